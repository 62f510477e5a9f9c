"""When a loop is worth a second core: the measured thresholds every schedule (schedules/) and
the delta kernels' hand-built loop nests (primitives/delta_walk.py) decide by."""

# When a loop is worth a parallel region. Most figures below were measured on TVM's thread pool
# (0.6-2 us a region on these machines); our libraries now run their regions on our own launcher
# (parallel_launch.py: 0.11-0.12 us an empty region on a 2-core znver5). Re-measured there (AMD
# EPYC znver5, AVX-512 VNNI build, whole models, the fastest of 4-6 processes each): every
# threshold at 0.5 / 0.25 / 0.1 of its value, ResNet-44 100-106 / 102-104 / 117-120 us against
# 100-105 at 1; the popcount thresholds at 0.3 and 0.1, SVHN ConvNet BNN 23.3 / 23.3 us against
# 24.3 and ResNet-44 BNN 83-84 against 82 (within the noise): the second core's cost is now
# the cores exchanging the layer's data, not the launch, and the thresholds stay.
# Measured with a pool of 2 threads on a 2-core znver5 (tvm_deepchip/threads.py: TVM's default
# pool there had 1 thread, which is what the older figures below were measured with):
# - PARALLEL_MIN_LANES, vector adds of the sparse/packed convs (rows and accumulators, in lanes):
#   AlexNet's conv2-5 (9-17 M) 1.3-1.8x faster on 2 cores; the SVHN ConvNet's (0.3-0.9 M) gain
#   nothing or lose (conv5, 0.6 M: 10 -> 16 us). Re-measured for the sparse convs' chunked form
#   (_tile_chunks) on an Intel Xeon (AVX-512 VNNI; a parallel region costs ~2 us there): layers
#   of 1.2-2 M lanes gain 0-25% or lose by class (SVHN conv2 1.6 M: AVX-512 43 -> 32 us, AVX2
#   54 -> 57), ResNet-44's (0.3-0.7 M) lose 3-8 us each (the cores exchange the layer's input
#   and output through the caches);
# - PARALLEL_MIN_MACS, the bit-plane dot's multiply-adds (primitives/bit_dot): AlexNet's last
#   layer (4.1 M, as an int8 dense) 67 -> 36 us. On our launcher (AMD EPYC znver4, AVX-512 VNNI
#   build, counting only the products computed): the digits model's 2x2 convs (262-524 K) alone
#   2.1 / 3.9 / 3.9 -> 1.5-2.4 / 2.6 / 2.6 us, the model 0.80-0.82x, the MLP's 512x512 layer
#   (524 K) the model 0.80x; below 200 K it lost (LeNet's fc1, 131 K: the model 1.09x). (The int8
#   conv and dense decide by the vector instructions of their dot products instead:
#   PARALLEL_MIN_DOT_OPS below.)
# - PARALLEL_MIN_GATHERS, scalar loops over index lists (one gather-add per entry): 1x1-output
#   convs (measured with one thread: 2 cores lose below ~3K entries, gain at 35K and more);
# - PARALLEL_MIN_WORK, lane operations of data-movement loops and TVM's own elementwise ops: not yet
#   re-measured with 2 threads (lowered to 1 M, AlexNet's conv1 went 185 -> 213 us).
# - PARALLEL_MIN_WINDOW_TAPS, TVM's pools (outputs x window taps), on an Intel Xeon (AVX-512
#   build), random 8-bit inputs (LLVM compiles the max of AlexNet's 13-wide rows to branches):
#   AlexNet's second 3x3/2 pool (292 K taps) 370-430 -> 190-260 us on 2 cores, its first (420 K)
#   19-42 -> 23-31 (this machine's noise), its last (83 K) lost; SVHN ConvNet's 2x2 pools (62 K,
#   21 K taps) lost (2.7 -> 3.4 us).
# - PARALLEL_MIN_POOL_LANES, our 8-bit max pool (primitives/int8_max_pool: row vectors x window
#   rows, in lanes), AMD EPYC znver5, AVX-512 build, fastest of 15 x 200: AlexNet's pools (285 K,
#   202 K, 40 K lanes) 3.5 / 4.0 / 2.7 us on 2 cores against 3.7 / 4.0 / 1.8 on one; SVHN's 2x2
#   pools 2.2 us on 2 cores against 0.4-0.6 on one.
# - PARALLEL_MIN_POPCOUNT_WORDS, the XNOR kernels' popcounted 32-bit words (schedules/xnor.py), on an
#   Intel Xeon (AVX-512 VPOPCNTDQ build), output positions split over 2 cores: 147-590 K words gain
#   1.3-1.8x (16x16 maps: 16.5 -> 10.9 us, 83.9 -> 47.2), 74 K words gain on 4x4 and 8x8 maps
#   (4.35 -> 3.90, 5.76 -> 4.26 us) and lose on a 2x2 map (4 positions: 3.64 -> 4.05), 18 K words
#   lose (0.88 -> 2.23 us).
#   PARALLEL_MIN_POPCOUNT_STEPS: a layer of one output position splits its channel blocks instead,
#   where its vector popcounts (words / lanes x IsaClass.popcount_steps) reach this: AMD EPYC
#   znver5, SVHN ConvNet BNN conv7 (one position, 51 K words): AVX2 build (25.6 K steps)
#   5.6 -> 3.6 us, AVX-512 VPOPCNTDQ (3.2 K steps) 1.0 -> 1.3-2.3 us.
# - PARALLEL_MIN_ROW_LANES, delta convs split by output rows (primitives/delta_rows.py: each
#   core copies, walks and writes its own rows, the residual add included), whole models A/B in
#   one process on an AMD EPYC znver4 (2 cores, a noisy VM): ResNet-44 (layers of 250-300 K lane
#   adds) AVX-512 build 0.276 -> 0.244 and 0.308 -> 0.305 ms (medians of 25 x 100 runs), AVX2
#   build 0.347 -> 0.299; SVHN ConvNet (conv2/3, 1 M) 0.145 -> 0.134, AVX2 0.290 -> 0.253; LeNet's
#   conv2 (123 K) lost: 15.6 -> 16.2 us. On our launcher, with strided convs split by rows too
#   (AMD EPYC znver5, both builds in one process taking turns, 3 x 200 pairs, medians): the
#   threshold at 10 K instead of 200 K (ResNet-44's stride-2 convs, 125 K, and projection
#   shortcuts, 13 K; LeNet's conv2) ResNet-44 0.956-0.961x the time (AVX-512 VNNI build), 0.965-
#   0.975x (AVX2 build); LeNet 0.943-0.947x, 0.940-0.954x.
# - CHANNEL_SPLIT_SHARE, the same tasks split by channel blocks instead (each copies the whole
#   image) where a task's share of the lists over the whole output costs under this share of the
#   rows' walk (a vector add per entry and vector of positions, about one op per entry to decode):
#   AMD EPYC znver4, fastest of 9 x 100 runs, SVHN ConvNet's 7x7 and 5x5 convs 43.3 -> 25.7 us
#   (AVX-512 build; they walked a whole vector of rows a task, or one core), 52.0 -> 35.8 (AVX2);
#   ResNet-44's 8x8 layer3.0.conv2 5.1 -> 4.1 us; its 16x16 and 32x32 layers stay split by rows.
# - PARALLEL_MIN_PART_LANES, sparse convs whose output is one short vector (2x2 and 4x4 maps: no
#   positions to split) cut into two channel parts, each core summing its part's rows
#   (sparse_rows.pack_rows, schedules/common._tile_parts): AMD EPYC znver1 (AVX2), one layer alone,
#   the two forms taking turns (20 x 300 runs, medians), 3x3 convs at 90% zeros: 24 -> 32 channels
#   on a 2x2 map (9 K row-sum lanes) 1.03x the one-core time, on 4x4 (28 K) 0.84x, 32 -> 64 on
#   2x2 (22 K) 0.78x, 48 -> 64 on 4x4 (98 K) 0.70x, 64 -> 128 on 2x2 (82 K) 0.67x; the trained
#   digits model's conv2-6 0.97 / 0.71 / 0.75 / 0.7-1.2 (noisy) / 0.69x, the whole model 0.81x.
# - PARALLEL_MIN_LAYOUT_BYTES, the int8 convs' grouped layout copies (grouped_layout, column_fold)
#   split by rows over the cores, each core then computing the positions of its rows (the dot
#   products read the layout where it was written: one core writing it all, the lines the other
#   core had read in the last run moved back to it first, ~3x the copy's one-core time). AMD EPYC
#   znver4, AVX-512 VNNI build, one layer, the two forms taking turns (30 x 50 runs, medians of
#   the paired ratios): AlexNet's conv1 (489 KB) 0.90x the time, SVHN ConvNet's conv1 (34 KB)
#   0.93x; the BWN models' 8-bit convs: ResNet-44's layer1 (18 KB) 0.88x, layer2 (10 KB) 0.94x,
#   SVHN's conv3 (26 KB) 0.93x, conv5 (10 KB) 0.98x, conv2 (19 KB) 1.07x. Only convs of
#   PARALLEL_MIN_LAYOUT_MACS or more: ResNet-44's int8 conv1 (0.44 M MACs, 30 KB with the model
#   input's quantize in its copy: conv_input_fusion) alone 5.35 -> 4.1 us (AVX-512 VNNI build),
#   9.3 -> 7.5 us (AVX2 build), the model 0.995x (AVX2, in turns); below it the digits model's
#   conv1 (0.08 M) lost (1.01-1.03x).
# - PARALLEL_MIN_DOT_OPS, the vector instructions of the int8 convs' and dense layers' dot products
#   (schedules/dot_product; dot_intrinsics.ops_per_mac: one vpdpbusd or sdot a 16- or 4-lane step;
#   vpmaddwd and its add, 2 a step of 8 lanes x 2 channels on AVX2, whose class splits from fewer:
#   see there). Measured: SVHN's conv1 on AVX-512 VNNI (110K vpdpbusd) 50 -> 38 us on two cores, 9K
#   of them lose 30%, and 5K instead of 40K gained no model there (ResNet-44's conv1, 6.9K: 0.994-
#   0.997x); on AVX2 (AMD EPYC znver1, whole models in one process taking turns) LeNet's conv1 (29K
#   instructions) and ResNet-44's (55K), serial when this counted AVX2's 8 instructions a 64-MAC
#   step as 2, on two cores: LeNet 0.77x the time, ResNet-44 0.97x.
# SCALAR_COST: lane operations one scalar byte gather is worth (data-movement loops).
PARALLEL_MIN_LANES = 2_000_000
PARALLEL_MIN_MACS = 200_000
PARALLEL_MIN_WORK = 20_000_000
PARALLEL_MIN_GATHERS = 30_000
PARALLEL_MIN_WINDOW_TAPS = 200_000
PARALLEL_MIN_POOL_LANES = 1_000_000  # int8_max_pool's row-vector lanes (see above)
PARALLEL_MIN_POPCOUNT_WORDS = 60_000
PARALLEL_MIN_POPCOUNT_STEPS = 10_000  # ... and a layer of one position split by channel blocks
PARALLEL_MIN_DOT_OPS = 20_000  # int8 dot-product instructions (see above)
PARALLEL_MIN_LAYOUT_BYTES = 8_192  # int8 convs' grouped layouts split by rows (see above),
PARALLEL_MIN_LAYOUT_MACS = 400_000  # ... of convs of this many multiply-adds or more (see above)
PARALLEL_MIN_ROW_LANES = 10_000  # delta convs split by output rows (delta_rows): lane adds
ROW_PARTS = 2  # ... into this many tasks (the 2 cores of the machines measured)
CHANNEL_SPLIT_SHARE = 0.8  # ... or by channel blocks (delta_rows.TaskSplit)
PARALLEL_MIN_POSITIONS = 8  # ... and output positions for both cores
PARALLEL_MIN_PART_LANES = 16_000  # sparse convs on tiny maps split by channel parts: row-sum lane adds
SCALAR_COST = 32
