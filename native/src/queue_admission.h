// When the search queue turns calls away: CoDel's test of a standing queue, applied at the door.
//
// A queue that empties now and then is absorbing bursts: it refuses nothing, however long it grew for a
// moment. A queue whose oldest entry has waited over the target for a whole interval is standing (calls
// arrive faster than searches finish): from then on a call is refused while the oldest queued search
// has waited over the target, and the queue goes back to admitting everything once an interval passes
// with no search over it. What is measured is what the queue does (how long its oldest entry has
// waited), not a forecast from its length and a mean search time: a host whose other processes slow
// every search stretches both sides of such a forecast alike, but only a queue that truly falls behind
// keeps its entries waiting.
#pragma once

#include <chrono>

namespace canopy {

struct AdmissionBounds {
  std::chrono::nanoseconds target;    // a wait the queue may have for a moment
  std::chrono::nanoseconds interval;  // how long a wait over the target must last to count as standing
};

class QueueAdmission {
 public:
  using Clock = std::chrono::steady_clock;

  // One observation: the time, and how long the oldest queued entry has waited (zero: queue empty).
  void observe(Clock::time_point now, std::chrono::nanoseconds oldest_wait, AdmissionBounds bounds) {
    const bool over = oldest_wait > bounds.target;
    switch (state_) {
      case State::kOpen:
        if (over) enter(State::kOver, now);
        break;
      case State::kOver:
        if (!over) enter(State::kOpen, now);
        else if (now - since_ >= bounds.interval) enter(State::kShedding, now);
        break;
      case State::kShedding:
        if (over) since_ = now;
        else if (now - since_ >= bounds.interval) enter(State::kOpen, now);
        break;
    }
  }

  // Whether a call arriving now (after observe) may join the queue.
  bool admits(std::chrono::nanoseconds oldest_wait, AdmissionBounds bounds) const {
    return state_ != State::kShedding || oldest_wait <= bounds.target;
  }

  bool shedding() const { return state_ == State::kShedding; }

 private:
  enum class State {
    kOpen,      // no queued entry over the target: everything is admitted
    kOver,      // the oldest entry has waited over the target since `since_`; still admitting, a burst may drain
    kShedding,  // the queue stood over the target an interval; refusing while it is over, `since_`: last seen over
  };

  void enter(State next, Clock::time_point now) {
    state_ = next;
    since_ = now;
  }

  State state_ = State::kOpen;
  Clock::time_point since_{};
};

}  // namespace canopy
