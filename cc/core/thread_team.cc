#include "core/thread_team.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TFSVD_HAVE_MXCSR 1
#else
#include <cfenv>
#endif

namespace tfsvd {
namespace {

// The floating-point control state of the calling thread (on x86 the MXCSR: rounding mode and
// denormal flushing, which TensorFlow sets per thread).
class FloatControl {
 public:
  static FloatControl Current() {
    FloatControl c;
#ifdef TFSVD_HAVE_MXCSR
    c.mxcsr_ = _mm_getcsr();
#else
    std::fegetenv(&c.env_);
#endif
    return c;
  }
  void Apply() const {
#ifdef TFSVD_HAVE_MXCSR
    // Exception flags are sticky status bits, not control: keep the control part only.
    _mm_setcsr((mxcsr_ & ~0x3Fu));
#else
    std::fesetenv(&env_);
#endif
  }

 private:
#ifdef TFSVD_HAVE_MXCSR
  unsigned mxcsr_ = 0;
#else
  std::fenv_t env_;
#endif
};

inline void CpuRelax() {
#ifdef TFSVD_HAVE_MXCSR
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Waits until done() holds: spins briefly, then yields the core at every check. The thing waited
// for (a chunk claimed by a helper) may belong to a thread the OS has descheduled because more
// threads than cores are busy (two large SVDs at once); spinning then would only delay it.
template <class Done>
void WaitUntil(Done&& done) {
  for (int spins = 0; !done(); ++spins) {
    if (spins < 4096) {
      CpuRelax();
    } else {
      std::this_thread::yield();
    }
  }
}

// How long a helper spins for the next step before it sleeps. Steps of a factorisation follow
// each other within microseconds; the sequential phases between them last milliseconds.
constexpr auto kSpinTime = std::chrono::microseconds(200);

}  // namespace

// Protocol. `epoch` is odd while a step is open and even between steps. A helper that sees a new
// odd epoch announces itself in `entered`, checks that the epoch has not moved on, and only then
// touches the step (`invoke`, `fn`, `next`, `done`, all written before the epoch was published).
// The caller closes a step by making the epoch even and then waits until `entered` drops to zero,
// so no helper can still be inside a step whose closure lives in the caller's stack frame.
struct ThreadTeam::State {
  std::atomic<unsigned> epoch{0};
  std::atomic<int> entered{0};
  std::atomic<bool> stop{false};
  std::atomic<int> sleepers{0};
  std::mutex mutex;
  std::condition_variable wake;

  // Members: the caller is 0, helpers take 1, 2, ... in the order they first arrive.
  int members = 1;
  std::atomic<int> arrived{1};

  void (*invoke)(void*, Index) = nullptr;
  void* fn = nullptr;
  Index chunks = 0;
  // The chunks of a step are cut into `members` contiguous home ranges; cursor[k] claims the next
  // chunk of member k's range. Each member runs its own range first, then helps with the others'
  // (so a late or busy helper delays nothing). A step's chunk c usually covers the same rows or
  // columns as at the previous step, so its data stays in the cache of the core that last worked
  // on it; one shared counter handed chunks to whichever thread came first and moved columns
  // between the cores' caches at every step (single matrix on 2 threads, Xeon, ms: 1024^2
  // 121-125 -> 108-114, 2048^2 770-833 -> 736-770).
  std::unique_ptr<std::atomic<Index>[]> cursor;
  std::atomic<Index> done{0};

  FloatControl control;

  Index HomeBegin(int member) const { return chunks * member / members; }

  // Claims and runs chunks of the open step, member `me`'s own first, until none is left.
  void Work(int me) {
    for (int i = 0; i < members; ++i) {
      const int k = (me + i) % members;
      const Index end = HomeBegin(k + 1);
      for (Index c = cursor[k].fetch_add(1); c < end; c = cursor[k].fetch_add(1)) {
        invoke(fn, c);
        done.fetch_add(1, std::memory_order_release);
      }
    }
  }

  void HelperLoop() {
    const FloatControl saved = FloatControl::Current();
    control.Apply();
    const int me = std::min(arrived.fetch_add(1), members - 1);
    unsigned seen = 0;
    while (!stop.load()) {
      const unsigned e = WaitForStep(seen);
      if (stop.load()) break;
      seen = e;
      entered.fetch_add(1);
      if (epoch.load() == e) Work(me);
      entered.fetch_sub(1);
    }
    saved.Apply();
  }

  // Returns an odd epoch other than `seen`, or any epoch once stop is set.
  unsigned WaitForStep(unsigned seen) {
    const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
    for (int spins = 0;; ++spins) {
      const unsigned e = epoch.load();
      if ((e & 1u) && e != seen) return e;
      if (stop.load()) return e;
      CpuRelax();
      if ((spins & 255) == 255 && std::chrono::steady_clock::now() > deadline) break;
    }
    std::unique_lock<std::mutex> lock(mutex);
    sleepers.fetch_add(1);
    unsigned e = epoch.load();
    while (!((e & 1u) && e != seen) && !stop.load()) {
      wake.wait(lock);
      e = epoch.load();
    }
    sleepers.fetch_sub(1);
    return e;
  }

  void WakeSleepers() {
    if (sleepers.load() == 0) return;
    { std::lock_guard<std::mutex> lock(mutex); }
    wake.notify_all();
  }
};

// Below this many entries a step runs on the caller alone: synchronising a team costs about a
// microsecond, about what streaming 32K floats from cache costs. Chunks are at least
// kMinChunkLength long and at most kMaxStepChunks in number (each chunk is one BLAS call).
constexpr Index kMinTeamElements = Index{1} << 15;
constexpr Index kMinChunkLength = 64;

Index StepChunks(Index length, Index elements) {
  if (elements < kMinTeamElements) return 1;
  const Index chunks = length / kMinChunkLength;
  return chunks < 1 ? 1 : (chunks > kMaxStepChunks ? kMaxStepChunks : chunks);
}

ThreadTeam::ThreadTeam(ThreadLender* lender, int helpers) {
  if (lender == nullptr) return;
  if (helpers > lender->MaxHelpers()) helpers = lender->MaxHelpers();
  if (helpers <= 0) return;
  state_ = std::make_shared<State>();
  state_->control = FloatControl::Current();
  state_->members = 1 + helpers;
  state_->cursor.reset(new std::atomic<Index>[state_->members]);
  for (int h = 0; h < helpers; ++h) {
    std::shared_ptr<State> state = state_;  // keeps the state alive for a helper that starts late
    lender->Lend([state] { state->HelperLoop(); });
  }
}

ThreadTeam::~ThreadTeam() {
  if (state_ == nullptr) return;
  state_->stop.store(true);
  { std::lock_guard<std::mutex> lock(state_->mutex); }
  state_->wake.notify_all();
}

void ThreadTeam::Run(Index chunks, void (*invoke)(void*, Index), void* fn) {
  State& s = *state_;
  s.invoke = invoke;
  s.fn = fn;
  s.chunks = chunks;
  for (int k = 0; k < s.members; ++k) s.cursor[k].store(s.HomeBegin(k));
  s.done.store(0);
  s.epoch.fetch_add(1);  // odd: the step is open
  s.WakeSleepers();
  s.Work(0);
  WaitUntil([&s, chunks] { return s.done.load(std::memory_order_acquire) >= chunks; });
  s.epoch.fetch_add(1);  // even: closed
  WaitUntil([&s] { return s.entered.load() == 0; });
}

}  // namespace tfsvd
