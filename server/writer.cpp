#include "server/writer.hpp"

#include "common/log.hpp"
#include "server/history.hpp"
#include "server/session.hpp"
#include "server/stats.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace chat {
namespace {

// Bytes one client may take per turn of the loop before the others get theirs.
constexpr std::size_t turn_budget = 256 * 1024;
constexpr int max_events = 256;

}  // namespace

Writer::Writer(int index, const ServerConfig& config, const History& history, ServerStats& stats)
    : index_(index), config_(config), history_(history), stats_(stats) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // the wakeup eventfd; sessions have their own pointer
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wakeup_.fd(), &ev) != 0) {
    const int err = errno;
    ::close(epoll_fd_);
    throw std::system_error(err, std::generic_category(), "epoll_ctl");
  }
}

Writer::~Writer() {
  stop();
  ::close(epoll_fd_);
}

void Writer::start() {
  thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

void Writer::stop() {
  if (thread_.joinable()) {
    thread_.request_stop();
    wakeup_.signal();
    thread_.join();
  }
  // The thread is gone: whatever it still held is let go of here, on the main thread.
  {
    std::lock_guard lock(mutex_);
    for (auto& s : adopted_) owned_.push_back(std::move(s));
    adopted_.clear();
    marked_.clear();
  }
  for (auto& s : owned_) release(s);
  owned_.clear();
}

void Writer::adopt(std::shared_ptr<Session> session) {
  session->set_writer(this);
  ++load_;
  {
    std::lock_guard lock(mutex_);
    adopted_.push_back(std::move(session));
  }
  signal();
}

void Writer::wake(Session& session) {
  // One entry per session in marked_, however many lines it gets before the writer looks.
  if (!session.writer_slot.marked.exchange(true)) {
    std::lock_guard lock(mutex_);
    marked_.push_back(session.shared_from_this());
  }
  signal();
}

void Writer::room_changed() {
  // The history's head was stored before this (release); the fence orders that store before
  // the load of sleeping_, as the writer orders its store of sleeping_ before its load of the
  // head: one of the two sides always sees the other, so no wake-up is lost.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  signal();
}

void Writer::signal() {
  if (sleeping_.exchange(false)) wakeup_.signal();
}

void Writer::run(std::stop_token stop) {
  set_thread_role("writer " + std::to_string(index_));
  epoll_event events[max_events];
  std::vector<std::shared_ptr<Session>> marked;
  std::vector<Session*> writable;
  bool again = false;  // someone had more than one turn's budget: go round again at once
  while (!stop.stop_requested()) {
    int timeout = 0;
    if (!again) {
      sleeping_.store(true);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      bool inbox = false;
      {
        std::lock_guard lock(mutex_);
        inbox = !adopted_.empty() || !marked_.empty();
      }
      // Nothing to do: sleep until woken. The timeout is only a safety net.
      if (!inbox && history_.head() == seen_head_ && !stop.stop_requested()) timeout = 1000;
    }
    const int n = ::epoll_wait(epoll_fd_, events, max_events, timeout);
    sleeping_.store(false);
    if (n < 0 && errno != EINTR) {
      log_error("epoll_wait failed: ", std::strerror(errno));
      continue;
    }
    try {
      writable.clear();
      for (int k = 0; k < n; ++k) {
        if (events[k].data.ptr == nullptr) {
          wakeup_.clear();
        } else {
          auto* s = static_cast<Session*>(events[k].data.ptr);
          s->writer_slot.parked = false;  // EPOLLOUT (or HUP/ERR): worth another try
          writable.push_back(s);
        }
      }
      marked.clear();
      {
        std::lock_guard lock(mutex_);
        for (auto& s : adopted_) owned_.push_back(std::move(s));
        adopted_.clear();
        marked.swap(marked_);
      }
      for (auto& s : marked) s->writer_slot.marked = false;  // later wake() calls mark it again
      const auto head = history_.head();
      const bool everyone = head != seen_head_ || again;
      seen_head_ = head;
      again = false;
      if (everyone) {
        // New room events concern every member: one pass over all of this writer's sessions,
        // each getting what it is due (up to a turn's budget) in one sendmsg. The pass starts one
        // session further on each time: whoever comes first is least behind, and that must not
        // always be the same clients (the oldest, often the ones who talk).
        const std::size_t n = owned_.size();
        if (n > 0) {
          first_ = (first_ + 1) % n;
          for (std::size_t k = 0; k < n; ++k) again |= service(owned_[(first_ + k) % n]);
        }
      } else {
        for (const auto& s : marked) again |= service(s);
        // A session in the epoll set is alive and in owned_: release() takes it out of the set
        // before owned_ lets go of it (at the end of a turn, after this loop).
        for (auto* s : writable) again |= service(s->shared_from_this());
      }
      std::erase_if(owned_, [](const auto& s) { return s->writer_done(); });
      // Let go of this turn's references now, not at the next turn (up to a second away on an
      // idle server): a reaped session's descriptor closes with its last reference.
      marked.clear();
    } catch (const std::exception& e) {
      log_error("writer turn failed: ", e.what());
    }
  }
}

void Writer::check_backlog(Session& s) {
  // A client that has not joined has no room stream, only its own lines (each checked as it is
  // queued) or one HTTP answer, which may be larger than the limit.
  if (s.ended() || !s.joined()) return;
  // The kernel's part, asked again if it is counted at all: the client may have read some of it
  // since the write that found the socket full (EPOLLOUT comes only below half the cap).
  if (s.outbox().kernel_bytes() > 0) s.outbox().note_kernel_bytes(unsent_bytes(s.native_handle()));
  const auto backlog = s.outbox().backlog();
  stats_.note_backlog(backlog);
  if (tracing() && s.writer_slot.parked && backlog >= s.writer_slot.traced_backlog + config_.send_queue / 8) {
    // A parked client falling behind, in steps of an eighth of the limit: where its bytes wait.
    const auto kernel = std::min(backlog, s.outbox().kernel_bytes());
    log_trace("send ", s.label(), ": ", backlog, " bytes behind of send-queue ", config_.send_queue, " (", kernel,
              " in the kernel, ", backlog - kernel, " queued here)");
    s.writer_slot.traced_backlog = backlog;
  }
  if (backlog > config_.send_queue) {
    if (tracing()) {
      log_trace("send ", s.label(), ": ", backlog, " bytes behind (", s.outbox().kernel_bytes(),
                " of them in the kernel) > send-queue ", config_.send_queue, " -> too-slow");
    }
    s.end(LeaveCause::too_slow, "send queue over " + std::to_string(config_.send_queue) + " bytes (room)");
  }
}

bool Writer::service(const std::shared_ptr<Session>& session) {
  Session& s = *session;
  if (s.writer_done()) return false;
  check_backlog(s);  // a parked client too: it is the one most likely to be behind
  if (s.writer_slot.parked) return false;  // its EPOLLOUT (or the HUP of the end above) brings it back
  const auto w = s.outbox().write_some(s.native_handle(), turn_budget);
  if (w.bytes > 0) {
    stats_.bytes_out += w.bytes;
    ++stats_.writes;
  }
  stats_.deliveries += w.room_entries;
  using State = Outbox::Written::State;
  switch (w.state) {
    case State::idle:
      s.set_write_stalled(std::nullopt);
      return false;
    case State::more:
      s.set_write_stalled(std::nullopt);
      return true;
    case State::blocked:
      // What the kernel holds unsent now counts as behind too (about min(--send-queue / 4, 64 KiB)
      // at most, TCP_NOTSENT_LOWAT): --send-queue is how far behind a client may be, wherever the
      // bytes wait. (write_some set it back to 0 when a write took everything.)
      s.outbox().note_kernel_bytes(unsent_bytes(s.native_handle()));
      // The poller ends the client too-slow if this lasts --send-timeout with no progress.
      if (w.bytes > 0 || w.progress > 0 || !s.write_stalled_since()) {
        if (tracing() && !s.write_stalled_since()) {
          log_trace("send ", s.label(), ": socket full (EAGAIN) after ", w.bytes, " bytes, ", s.outbox().backlog(),
                    " waiting; parked until EPOLLOUT, too-slow after ", format_duration(config_.send_timeout),
                    " without progress");
        }
        s.set_write_stalled(Session::Clock::now());
      }
      park(s);
      check_backlog(s);
      return false;
    case State::finished:
      ::shutdown(s.native_handle(), SHUT_WR);  // after the BYE: a FIN, so the client sees a clean close
      release(session);
      return false;
    case State::aborted:
      release(session);
      return false;
    case State::failed:
      log_debug("write to ", s.label(), " failed: ", w.error.message());
      if (tracing()) log_trace("send ", s.label(), ": sendmsg: ", w.error.message(), " (errno ", w.error.value(), ")");
      s.writer_failed(w.error);
      release(session);
      return false;
  }
  return false;
}

void Writer::park(Session& s) {
  epoll_event ev{};
  ev.events = EPOLLOUT | EPOLLONESHOT;
  ev.data.ptr = &s;
  const int op = s.writer_slot.in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (::epoll_ctl(epoll_fd_, op, s.native_handle(), &ev) != 0) {
    log_error("epoll_ctl failed: ", std::strerror(errno));
    return;  // not parked: the next turn tries again
  }
  s.writer_slot.in_epoll = true;
  if (!s.writer_slot.parked) s.writer_slot.traced_backlog = 0;
  s.writer_slot.parked = true;
}

void Writer::release(const std::shared_ptr<Session>& session) {
  Session& s = *session;
  if (s.writer_done()) return;
  if (s.writer_slot.in_epoll) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, s.native_handle(), nullptr);
  s.writer_slot.in_epoll = false;
  s.writer_slot.parked = false;
  s.set_write_stalled(std::nullopt);
  s.writer_released();
  --load_;
}

WriterPool::WriterPool(const ServerConfig& config, const History& history, ServerStats& stats) {
  for (std::size_t i = 0; i < config.writers; ++i) {
    writers_.push_back(std::make_unique<Writer>(static_cast<int>(i + 1), config, history, stats));
  }
}

void WriterPool::start() {
  for (auto& w : writers_) w->start();
}

void WriterPool::stop() {
  for (auto& w : writers_) w->stop();
}

void WriterPool::adopt(const std::shared_ptr<Session>& session) {
  Writer* least = writers_.front().get();
  for (auto& w : writers_) {
    if (w->load() < least->load()) least = w.get();
  }
  least->adopt(session);
}

void WriterPool::room_changed() {
  for (auto& w : writers_) w->room_changed();
}

}  // namespace chat
