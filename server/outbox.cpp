#include "server/outbox.hpp"

#include "common/protocol.hpp"
#include "common/render.hpp"
#include "server/tls_transport.hpp"

#include <asio/error.hpp>

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace chat {
namespace {

constexpr std::size_t max_pieces = 1024;  // iovecs per sendmsg: IOV_MAX

}  // namespace

Outbox::Push Outbox::push(Item item) {
  {
    std::lock_guard lock(mutex_);
    if (closed_ || aborted_) return Push::closed;
    const std::uint64_t size = item.line.size();
    // Over the limit is full, except into an empty outbox: a line is always smaller than the
    // limit, and an HTTP answer (the page's script, a file under --web-root) may be larger.
    const std::uint64_t behind = backlog();
    if (item.kind != Item::Kind::join_room && behind > 0 && behind + size > limit_) return Push::full;
    if (item.kind == Item::Kind::join_room) {
      // From now on the room's bytes count against this client, whether or not the writer has
      // got to this item yet.
      room_sent_.store(item.start_bytes);
      in_room_.store(true);
    }
    own_bytes_ += size;
    inbox_.push_back(std::move(item));
  }
  return Push::ok;
}

void Outbox::close_with(Item last) {
  {
    std::lock_guard lock(mutex_);
    if (closed_ || aborted_) return;
    closed_ = true;
    last.kind = Item::Kind::last;
    own_bytes_ += last.line.size();
    inbox_.push_back(std::move(last));
  }
  drained_.notify_all();
}

void Outbox::abort() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    aborted_ = true;
    inbox_.clear();
  }
  drained_.notify_all();
}

bool Outbox::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

std::uint64_t Outbox::backlog() const {
  std::uint64_t room = 0;
  if (in_room_.load()) {
    const auto head_bytes = history_.bytes_at_head(mode_.load());
    const auto sent = room_sent_.load();
    room = head_bytes > sent ? head_bytes - sent : 0;
  }
  // Over TLS a batch is counted as written once it is encrypted: what the socket did not take
  // of it (up to a writer's turn, 256 KiB) waits in the transport, and is behind all the same.
  const TlsTransport* tls = transport_.load();
  const std::uint64_t encrypted = tls != nullptr ? tls->waiting() : 0;
  return own_bytes_.load() + room + encrypted + kernel_bytes_.load(std::memory_order_relaxed);
}

void Outbox::notify_reader() {
  if (!reader_waiting_.load()) return;
  std::lock_guard lock(mutex_);  // so the reader cannot miss it between its check and its wait
  drained_.notify_all();
}

std::string Outbox::render_users(const Item& item) const {
  Event users{Event::Kind::users, {}, {}, {}, {}, item.users.names()};
  if (mode_.load() == StreamMode::text) return render_line(users, item.when).value_or("") + "\n";
  return format_event(users) + "\n";
}

Outbox::Written Outbox::write_some(int fd, std::size_t budget) {
  Written out;
  // The head first, then the queued own lines: every own line stamped below this head was pushed
  // before the entry at its stamp was appended (under the room's lock, or in the same thread),
  // so it is in the inbox taken below. Read the other way round, an entry appended between the
  // two reads could go out ahead of own lines stamped before it that were still being queued:
  // a live line inside a resume's HISTORY block. Own lines stamped above this head wait for the
  // next call (see `more` below).
  const std::uint64_t head = history_.head();
  {
    std::lock_guard lock(mutex_);
    if (aborted_) {
      pending_.clear();
      cursor_ = HistoryCursor();  // lets go of the history chunks
      out.state = Written::State::aborted;
      return out;
    }
    for (auto& item : inbox_) pending_.push_back(std::move(item));
    inbox_.clear();
  }
  const StreamMode mode = mode_.load();
  TlsTransport* const tls = transport_.load();
  if (tls != nullptr) {
    // A batch is encrypted whole, and what the socket does not take of it waits in user space:
    // at most what the kernel may hold unsent for a clear-text client (a quarter of the limit,
    // 16 to 64 KiB), so a slow TLS client costs no more memory than another.
    budget = std::min(budget, std::clamp<std::size_t>(limit_ / 4, 16 * 1024, 64 * 1024));
    if (!tls->established()) {
      // Nothing goes out before the handshake is done (its replies are the reader's). A session
      // that ends meanwhile (the handshake timeout) gets its FIN without the BYE: the client
      // could not read it.
      const bool ending = std::any_of(pending_.begin(), pending_.end(),
                                      [](const Item& item) { return item.kind == Item::Kind::last; });
      out.state = ending ? Written::State::finished : Written::State::idle;
      return out;
    }
    const auto sent = tls->flush();  // what the socket did not take last time goes first
    out.progress = sent.bytes;
    if (sent.bytes > 0) notify_reader();  // the backlog (waiting()) went down
    if (sent.error != 0) {
      out.state = Written::State::failed;
      out.error = std::error_code(sent.error, asio::error::get_system_category());
      return out;
    }
    if (sent.blocked) {
      out.state = Written::State::blocked;
      return out;
    }
    if (tls_finishing_) {
      out.state = Written::State::finished;  // the BYE and the close_notify are out
      return out;
    }
  }

  // Gather: own items and room entries, merged by their stamps, into at most max_pieces iovecs.
  // Lines that go out as they are and lie back to back (a chunk of the history) are one iovec,
  // pointing into the history: nothing is copied per client. A line that a framing changes
  // (a WebSocket frame: a header, the line without its LF) is built in `wire`, this thread's
  // buffer, right after the one before, so a run of them is one iovec too. (Pointing at the
  // header and at the line in the history, two iovecs per line, made one sendmsg carry at most
  // 511 lines, and the kernel's copy of thousands of small pieces cost a browser twice the CPU
  // per delivery of a TCP client; a copy here of each line is cheaper than that.) The bytes are
  // built the same way on every call, so a partial write resumes inside them.
  const Framing& framing = *framing_.load();
  const bool passthrough = framing.passthrough();
  thread_local std::vector<char> wire;
  if (!passthrough && wire.size() < budget + 16 * 1024) wire.resize(budget + 16 * 1024);
  std::size_t wire_used = 0;
  iovec iov[max_pieces];
  std::size_t iovs = 0;
  std::vector<Piece>& pieces = pieces_;  // reused: no allocation per call
  pieces.clear();
  std::size_t total = 0;
  bool last_included = false;
  HistoryCursor g = cursor_;  // where the room stream would be after the pieces gathered so far
  bool g_in_room = cursor_in_room_;
  std::size_t next_own = 0;
  auto append = [&](const char* from, std::size_t size, std::size_t& skip) {
    if (size <= skip) {
      skip -= size;
      return;
    }
    from += skip;
    size -= skip;
    skip = 0;
    total += size;
    if (iovs > 0 && static_cast<char*>(iov[iovs - 1].iov_base) + iov[iovs - 1].iov_len == from) {
      iov[iovs - 1].iov_len += size;
    } else {
      iov[iovs++] = iovec{const_cast<char*>(from), size};
    }
  };
  // Room in `wire` for a framed line of `size` bytes (the first one always fits: the buffer
  // grows while nothing in it is gathered yet).
  auto fits = [&](bool framed, std::size_t size) {
    if (!framed || passthrough) return true;
    const std::size_t need = size + Framing::max_header;
    if (wire_used + need <= wire.size()) return true;
    if (wire_used > 0) return false;
    wire.resize(need);
    return true;
  };
  auto add = [&](bool own, bool framed, std::string_view bytes) {
    std::size_t skip = pieces.empty() ? partial_ : 0;
    if (!framed || passthrough) {
      pieces.push_back(Piece{own, bytes.size(), bytes.size(), own ? 0u : 1u});
      append(bytes.data(), bytes.size(), skip);
      return;
    }
    char* at = wire.data() + wire_used;
    const auto frame = framing.frame(bytes, at);
    std::memcpy(at + frame.header_size, bytes.data(), frame.payload_size);
    const std::size_t size = frame.header_size + frame.payload_size;
    wire_used += size;
    pieces.push_back(Piece{own, size, bytes.size(), own ? 0u : 1u});
    append(at, size, skip);
  };
  // A room line cut short by the last write is finished first, whatever own line is due: an own
  // line stamped when the head was that entry's number (pushed while the entry was being
  // written) would otherwise go out in the middle of it.
  const bool finish_room_line = partial_ > 0 && partial_is_room_;
  while (iovs < max_pieces && pieces.size() < max_pieces * 8 && total < budget) {
    const bool room_line_first = finish_room_line && pieces.empty();
    if (!room_line_first && next_own < pending_.size() && (!g_in_room || pending_[next_own].after <= g.seq())) {
      Item& item = pending_[next_own];
      if (item.kind == Item::Kind::users && item.line.empty()) {
        item.line = render_users(item);  // once: a partial write resumes from the same bytes
        own_bytes_ += item.line.size();
      }
      const bool framed = item.kind == Item::Kind::line || item.kind == Item::Kind::users;
      if (!fits(framed, item.line.size())) break;
      ++next_own;
      if (item.kind == Item::Kind::join_room) {
        g = item.start;
        g_in_room = true;
      }
      add(true, framed, item.line);
      if (item.kind == Item::Kind::last) {
        last_included = true;
        break;
      }
      continue;
    }
    if (g_in_room && g.seq() < head &&
        (room_line_first || next_own >= pending_.size() || g.seq() < pending_[next_own].after)) {
      if (passthrough) {
        // Lines that go out as they are: every entry up to the next own item (or the head, or
        // the budget) that lies back to back in the chunk is one piece, found without a visit
        // to each entry; gathering costs per chunk, not per line.
        std::uint64_t until = next_own < pending_.size() ? std::min(head, pending_[next_own].after) : head;
        if (until <= g.seq()) until = g.seq() + 1;  // room_line_first: at least the cut line
        const std::size_t skip0 = pieces.empty() ? partial_ : 0;
        const auto run = g.run(until, mode, budget - total + skip0);
        std::size_t skip = skip0;
        pieces.push_back(Piece{false, run.bytes.size(), run.bytes.size(), run.entries});
        append(run.bytes.data(), run.bytes.size(), skip);
        g.advance(run.entries);
        continue;
      }
      const HistoryEntry& e = g.entry();
      const std::string_view line = e.in(mode);
      if (line.empty()) {
        // Not shown in this mode (a private message's place in the order): no frame at all.
        pieces.push_back(Piece{false, 0, 0, 1});
        g.advance();
        continue;
      }
      if (!fits(true, line.size())) break;
      add(false, true, line);
      g.advance();
      continue;
    }
    break;
  }
  if (pieces.empty()) {
    // Nothing is due now; an own line stamped above `head` (pushed after it was read) is due
    // once the entries before it go, on the next call.
    out.state = more_pending() ? Written::State::more : Written::State::idle;
    return out;
  }

  std::size_t written = 0;
  bool tls_blocked = false;
  if (tls != nullptr && (total > 0 || last_included)) {
    const auto sent = tls->send(iov, iovs, total, last_included);
    if (sent.error != 0) {
      out.state = Written::State::failed;
      out.error = std::error_code(sent.error, asio::error::get_system_category());
      return out;
    }
    out.progress += sent.bytes;
    if (!sent.encrypted) {
      // What the reader's engine made (an alert, a key update's answer) filled the socket
      // since the flush above: this batch waits, gathered again next time.
      out.state = Written::State::blocked;
      return out;
    }
    written = total;  // all encrypted; what the socket did not take waits in the transport
    tls_blocked = sent.blocked;
  } else if (total > 0) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = iovs;
    ssize_t n;
    do {
      n = ::sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        out.state = Written::State::blocked;
      } else {
        out.state = Written::State::failed;
        // Asio's system category, not std::generic_category(): cause_of() compares with
        // asio::error::connection_reset and friends, and a reset must read as `reset`.
        out.error = std::error_code(errno, asio::error::get_system_category());
      }
      return out;
    }
    written = static_cast<std::size_t>(n);
  }
  out.bytes = written;
  consume(written, pieces, mode, out);
  if (written == total) kernel_bytes_.store(0, std::memory_order_relaxed);  // before the reader is told
  if (written < total) {
    out.state = Written::State::blocked;
  } else if (last_included) {
    tls_finishing_ = tls_blocked;
    out.state = tls_blocked ? Written::State::blocked : Written::State::finished;
    cursor_ = HistoryCursor();
  } else if (tls_blocked) {
    out.state = Written::State::blocked;
  } else {
    out.state = more_pending() ? Written::State::more : Written::State::idle;
    if (tls != nullptr && out.state == Written::State::idle) tls->idle();
  }
  if (written > 0) notify_reader();
  return out;
}

void Outbox::consume(std::size_t bytes, const std::vector<Piece>& pieces, StreamMode mode, Written& out) {
  // The pieces were gathered from the front of pending_ and from the cursor, in order: walk them
  // again with the byte count the kernel took, and advance past every piece it took whole.
  std::uint64_t room_bytes = 0;  // added to room_sent_ once, at the end
  for (const Piece& piece : pieces) {
    const std::size_t left = piece.size - partial_;
    if (bytes < left) {
      if (piece.entries > 1) {
        // Part of a run: move past the entries it took whole, so that partial_ is again counted
        // from the entry the cursor is on.
        const auto whole = cursor_.whole_entries(mode, partial_ + bytes, piece.entries);
        cursor_.advance(whole.entries);
        room_bytes += whole.bytes.size();
        out.room_entries += whole.entries;
        partial_ = partial_ + bytes - whole.bytes.size();
      } else {
        partial_ += bytes;
      }
      partial_is_room_ = !piece.own;
      break;
    }
    bytes -= left;
    partial_ = 0;
    if (piece.own) {
      Item& item = pending_.front();
      own_bytes_ -= item.line.size();
      if (item.kind == Item::Kind::join_room) {
        cursor_ = std::move(item.start);
        cursor_in_room_ = true;
      }
      pending_.pop_front();
    } else {
      cursor_.entry();  // moves the cursor onto the chunk it is in: older ones are let go
      cursor_.advance(piece.entries);
      room_bytes += piece.counted;
      out.room_entries += piece.entries;
    }
  }
  if (room_bytes > 0) room_sent_.fetch_add(room_bytes);
}

}  // namespace chat
