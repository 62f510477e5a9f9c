/* tvm-deepchip's parallel launcher: what the kernels of a library we export call to run a
 * parallel loop (the contract of TVM's TVMBackendParallelLaunch: run flambda(task, env, cdata)
 * for tasks 0..n-1 on n threads, the caller running task 0, and return when all have).
 *
 * Why not TVM's thread pool: its workers and the launching thread wait for each other in
 * sched_yield loops, a system call per iteration. On the 2-core znver5 VM we measure on, an empty
 * two-task region took 0.57-1.55 us on TVM's pool and 0.11-0.12 us here, a whole ResNet-44
 * (AVX-512 build, 45 regions) 119 us against 100 (the fastest sessions of two runs of
 * scripts/parallel_launch_bench.py, which writes docs/parallel_launch.md). Why not libgomp: the same ResNet-44 through `#pragma omp parallel`
 * ran 118-125 us where this launcher ran 101-107 (a one-off probe), and it would add a runtime
 * library to every device.
 *
 * How it is wired: TVM's code generator calls parallel regions through the pointer
 * __TVMBackendParallelLaunch, a weak symbol of the library that TVM's loader fills in after
 * dlopen when the dynamic symbol table has it. This file defines the pointer strongly, with
 * hidden visibility and this launcher as its value: the linker keeps this definition, the
 * symbol leaves the dynamic table, the loader finds nothing to fill, and every loader (Python,
 * the C++ runtime, TVM's RPC server on a device) runs this launcher with no step of its own.
 *
 * Threads: TVM_NUM_THREADS, else OMP_NUM_THREADS, at most the CPUs this process may run on (all
 * of them when neither is set), read at the first launch. Workers ("deepchip-pool") start at the
 * first launch, spin for SPIN_NS after each job, then sleep on a futex; they return and are
 * joined before the library is unloaded (its code is theirs). A launch from inside a task, while
 * another thread's launch is running, or with one thread, runs its tasks one after another on the
 * calling thread (tasks that wait at a barrier need one thread each, as in TVM's pool). After
 * fork() the child starts its own workers. Each library has its own workers: a process running
 * two libraries in turns has one's workers spinning for up to SPIN_NS while the other runs (a
 * short spin for that).
 */
#define _GNU_SOURCE
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* TVM's ABI (include/tvm/runtime/c_backend_api.h) */
typedef struct {
  void* sync_handle;
  int32_t num_task;
} TVMParallelGroupEnv;
typedef int (*FTVMParallelLambda)(int task_id, TVMParallelGroupEnv* penv, void* cdata);

#define MAX_THREADS 64
#define SPIN_NS 200000L /* how long an idle worker spins before it sleeps */
#define LINE 64
#define THREAD_NAME "deepchip-pool"

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void futex(_Atomic unsigned* word, int op, unsigned value) {
  syscall(SYS_futex, (unsigned*)word, op, value, NULL, NULL, 0);
}

/* Lines written by the launching thread, by the workers and by a barrier's tasks kept apart */
static struct {
  _Alignas(LINE) _Atomic unsigned job; /* bumped for every launch; workers wait on it */
  FTVMParallelLambda flambda;
  void* cdata;
  int num_task;
  _Alignas(LINE) _Atomic int pending; /* workers not yet done with the current job */
  _Atomic int failed;                 /* the last nonzero return of a task */
  _Alignas(LINE) _Atomic int sleepers;
  _Atomic int busy; /* a launch is running */
  _Alignas(LINE) _Atomic int arrived;
  _Atomic unsigned round; /* barrier rounds */
} pool;

static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int threads; /* 0: workers not started in this process */
static _Atomic int quit;    /* workers return (the library is being unloaded) */
static pthread_t workers[MAX_THREADS];
static unsigned first_job; /* pool.job when the workers were started: each waits for the next */

/* Never more threads than CPUs: the waits spin, and a thread waited for that has no CPU to run on
 * holds up the launch to the end of a time slice (ResNet-44 with 3 threads on 2 CPUs: 8.3 ms a
 * run against 0.1). */
static int count_threads(void) {
  cpu_set_t set;
  int cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : (int)sysconf(_SC_NPROCESSORS_ONLN);
  int n = cpus;
  const char* names[] = {"TVM_NUM_THREADS", "OMP_NUM_THREADS"};
  for (int i = 0; i < 2; ++i) {
    const char* v = getenv(names[i]);
    if (v != NULL && atoi(v) > 0) {
      n = atoi(v) < cpus ? atoi(v) : cpus;
      break;
    }
  }
  return n < 1 ? 1 : n < MAX_THREADS ? n : MAX_THREADS;
}

static void* worker(void* arg) {
  int id = (int)(intptr_t)arg;
  unsigned seen = first_job; /* not pool.job now: a launch may have bumped it before this ran */
  for (;;) {
    long since = now_ns();
    unsigned spins = 0;
    while (atomic_load_explicit(&pool.job, memory_order_acquire) == seen) {
      relax();
      if ((++spins & 255) == 0 && now_ns() - since > SPIN_NS) {
        atomic_fetch_add(&pool.sleepers, 1); /* seq_cst: the launcher reads it after its bump */
        if (atomic_load(&pool.job) == seen) futex(&pool.job, FUTEX_WAIT_PRIVATE, seen);
        atomic_fetch_sub(&pool.sleepers, 1);
        since = now_ns();
      }
    }
    seen = atomic_load_explicit(&pool.job, memory_order_acquire);
    if (atomic_load(&quit)) return NULL;
    if (id < pool.num_task) {
      TVMParallelGroupEnv env = {&pool, pool.num_task};
      int rc = pool.flambda(id, &env, pool.cdata);
      if (rc != 0) atomic_store(&pool.failed, rc);
    }
    atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_release);
  }
}

static void forget_workers(void) { /* in a fork()ed child: none of the parent's threads are in it */
  atomic_store(&threads, 0);
  atomic_store(&pool.busy, 0);
  atomic_store(&pool.sleepers, 0);
  pthread_mutex_init(&start_lock, NULL);
}

/* Before the library is unmapped (dlclose, exit): the workers run its code, so they return and
 * are joined first. (TVM 0.27 keeps a loaded library mapped until exit; another loader may not.) */
__attribute__((destructor)) static void stop_workers(void) {
  int n = atomic_load(&threads);
  if (n <= 1) return;
  atomic_store(&quit, 1);
  atomic_fetch_add(&pool.job, 1);
  futex(&pool.job, FUTEX_WAKE_PRIVATE, INT_MAX);
  for (int i = 1; i < n; ++i) pthread_join(workers[i], NULL);
  atomic_store(&threads, 0);
  atomic_store(&quit, 0);
}

static int start(void) {
  static int at_fork;
  pthread_mutex_lock(&start_lock);
  int n = atomic_load(&threads);
  if (n == 0) {
    if (!at_fork) at_fork = pthread_atfork(NULL, NULL, forget_workers) == 0;
    n = count_threads();
    first_job = atomic_load(&pool.job);
    for (int i = 1; i < n; ++i) {
      if (pthread_create(&workers[i], NULL, worker, (void*)(intptr_t)i) != 0) {
        n = i; /* fewer workers than asked: run on those that started */
        break;
      }
      pthread_setname_np(workers[i], THREAD_NAME); /* what `top -H` and /proc/<pid>/task/<tid>/comm show */
    }
    atomic_store(&threads, n);
  }
  pthread_mutex_unlock(&start_lock);
  return n;
}

static int run_serially(FTVMParallelLambda flambda, void* cdata, int num_task) {
  int n = num_task > 0 ? num_task : 1;
  TVMParallelGroupEnv env = {NULL, n};
  for (int task = 0; task < n; ++task) {
    int rc = flambda(task, &env, cdata);
    if (rc != 0) return rc;
  }
  return 0;
}

static int launch(FTVMParallelLambda flambda, void* cdata, int num_task) {
  int n = atomic_load_explicit(&threads, memory_order_acquire), idle = 0;
  if (n == 0) n = start();
  int tasks = num_task > 0 ? num_task : n;
  /* busy: another thread's launch, or this one's from inside a task (nested) */
  if (n == 1 || tasks > n || !atomic_compare_exchange_strong(&pool.busy, &idle, 1))
    return run_serially(flambda, cdata, num_task);
  pool.flambda = flambda;
  pool.cdata = cdata;
  pool.num_task = tasks;
  atomic_store_explicit(&pool.failed, 0, memory_order_relaxed);
  atomic_store_explicit(&pool.pending, n - 1, memory_order_relaxed);
  atomic_fetch_add(&pool.job, 1); /* seq_cst, then the sleepers read: a worker going to sleep sees the bump */
  if (atomic_load(&pool.sleepers) > 0) futex(&pool.job, FUTEX_WAKE_PRIVATE, INT_MAX);
  TVMParallelGroupEnv env = {&pool, tasks};
  int rc = flambda(0, &env, cdata);
  while (atomic_load_explicit(&pool.pending, memory_order_acquire) != 0) relax();
  int failed = atomic_load(&pool.failed);
  atomic_store_explicit(&pool.busy, 0, memory_order_release);
  return rc != 0 ? rc : failed;
}

/* TVMBackendParallelBarrier: every task of the launch waits for the others */
static int barrier(int task_id, TVMParallelGroupEnv* penv) {
  (void)task_id;
  if (penv->sync_handle == NULL || penv->num_task <= 1) return 0; /* run serially: one task at a time */
  unsigned round = atomic_load(&pool.round);
  if (atomic_fetch_add(&pool.arrived, 1) == penv->num_task - 1) {
    atomic_store(&pool.arrived, 0);
    atomic_fetch_add(&pool.round, 1);
  } else {
    while (atomic_load(&pool.round) == round) relax();
  }
  return 0;
}

__attribute__((visibility("hidden"))) void* __TVMBackendParallelLaunch = (void*)launch;
__attribute__((visibility("hidden"))) void* __TVMBackendParallelBarrier = (void*)barrier;
