"""arm_cpu schedules (target key `arm_cpu`) where they differ from the other families: the int8
conv and dense on `sdot` (with dotprod) or NEON multiply-adds, and the sdot tensor intrinsics."""
