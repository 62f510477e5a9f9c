/* How long a cache line takes to go from one core to another and back: two threads, pinned to
 * the first two CPUs this process may use, hand a counter back and forth. Our parallel launcher
 * (tvm_deepchip/csrc/parallel_launch.c) hands a job over the same way, and a layer split over
 * two cores hands over the rows near its split. On a VM it is not a constant of the machine: it
 * moves with the host's placement of the vCPUs, and the time of models of many small parallel
 * layers moves with it (scripts/bench.py prints it at the start and end of a run). Prints one
 * JSON object. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#define TRIPS 200000
static _Alignas(64) _Atomic int ball;
static int cpus[2];

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void* partner(void* arg) {
  (void)arg;
  pin(cpus[1]);
  for (int i = 0; i < TRIPS; ++i) {
    while (atomic_load_explicit(&ball, memory_order_acquire) != 2 * i + 1) {
    }
    atomic_store_explicit(&ball, 2 * i + 2, memory_order_release);
  }
  return NULL;
}

int main(void) {
  cpu_set_t allowed;
  sched_getaffinity(0, sizeof(allowed), &allowed);
  int found = 0;
  for (int c = 0; c < CPU_SETSIZE && found < 2; ++c)
    if (CPU_ISSET(c, &allowed)) cpus[found++] = c;
  if (found < 2) {
    printf("{\"core_round_trip_ns\": null}\n");
    return 0;
  }
  pin(cpus[0]);
  pthread_t t;
  pthread_create(&t, NULL, partner, NULL);
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int i = 0; i < TRIPS; ++i) {
    atomic_store_explicit(&ball, 2 * i + 1, memory_order_release);
    while (atomic_load_explicit(&ball, memory_order_acquire) != 2 * i + 2) {
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  pthread_join(t, NULL);
  double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / TRIPS;
  printf("{\"core_round_trip_ns\": %.1f, \"cpus\": [%d, %d]}\n", ns, cpus[0], cpus[1]);
  return 0;
}
