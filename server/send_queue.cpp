#include "server/send_queue.hpp"

namespace chat {

SendQueue::Push SendQueue::push(SharedLine line) {
  {
    std::lock_guard lock(mutex_);
    if (closed_ || aborted_) return Push::closed;
    if (bytes_ + line->size() > limit_) return Push::full;
    bytes_ += line->size();
    lines_.push_back(std::move(line));
  }
  ready_.notify_one();
  return Push::ok;
}

void SendQueue::close(SharedLine last) {
  {
    std::lock_guard lock(mutex_);
    if (closed_ || aborted_) return;
    closed_ = true;
    // The last line may go over the limit: it is short and it is the last.
    if (last) {
      bytes_ += last->size();
      lines_.push_back(std::move(last));
    }
  }
  ready_.notify_one();
}

void SendQueue::abort() {
  {
    std::lock_guard lock(mutex_);
    aborted_ = true;
    lines_.clear();
    bytes_ = 0;
  }
  ready_.notify_one();
}

SendQueue::Pop SendQueue::pop(std::string& out, std::size_t max_bytes) {
  std::unique_lock lock(mutex_);
  ready_.wait(lock, [this] { return aborted_ || closed_ || !lines_.empty(); });
  if (aborted_) return Pop::aborted;
  if (lines_.empty()) return Pop::drained;  // closed, and everything was sent
  do {
    const auto& line = *lines_.front();
    out += line;
    bytes_ -= line.size();
    lines_.pop_front();
  } while (!lines_.empty() && out.size() + lines_.front()->size() <= max_bytes);
  return Pop::lines;
}

std::size_t SendQueue::bytes() const {
  std::lock_guard lock(mutex_);
  return bytes_;
}

}  // namespace chat
