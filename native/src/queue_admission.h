// When the search queue turns calls away: CoDel's test of a standing queue, applied at the door.
//
// A queue that empties now and then is absorbing bursts: it refuses nothing, however long it grew for a
// moment. A queue whose oldest entry has waited over the target for a whole interval is standing (calls
// arrive faster than searches finish). Only then does a forecast decide: a call is refused while the
// wait it would have (the work queued ahead of it) exceeds the target, so the accepted calls of an
// overload wait about one target, not a queue's worth. The queue goes back to admitting everything once
// an interval passes with no entry over the target and no call refused.
//
// Why both: a forecast alone (queued searches x mean search time) refuses a light load on a busy host,
// where one queued search behind a slowed one already forecasts a long wait; the standing test alone
// lets the queue refill to its target age after every refusal, and the work behind that head is what
// the last admitted call waits for. The standing test says "cannot keep up" from what the queue does;
// once that is known, the forecast keeps each accepted call's wait short.
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

  // Whether a call arriving now (after observe) may join the queue, where it would wait `expected_wait`
  // for the work ahead of it. A refusal counts as the queue still standing.
  bool admits(Clock::time_point now, std::chrono::nanoseconds expected_wait, AdmissionBounds bounds) {
    if (state_ != State::kShedding || expected_wait <= bounds.target) return true;
    since_ = now;
    return false;
  }

  bool shedding() const { return state_ == State::kShedding; }

 private:
  enum class State {
    kOpen,      // no queued entry over the target: everything is admitted
    kOver,      // the oldest entry has waited over the target since `since_`; still admitting, a burst may drain
    kShedding,  // the queue stood over the target an interval; refusing long waits, `since_`: last over or refused
  };

  void enter(State next, Clock::time_point now) {
    state_ = next;
    since_ = now;
  }

  State state_ = State::kOpen;
  Clock::time_point since_{};
};

}  // namespace canopy
