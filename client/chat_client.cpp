#include "client/chat_client.hpp"

#include "client/screen_model.hpp"  // parse_earlier()

#include "common/render.hpp"
#include "common/text.hpp"
#include "common/wording.hpp"

#include <poll.h>
#include <unistd.h>

#include <array>
#include <cassert>
#include <cerrno>
#include <limits>
#include <system_error>
#include <variant>

namespace chat {
namespace {

Event error_event(std::string_view code, std::string detail) {
  return Event{Event::Kind::error, {}, {}, std::string(code), std::move(detail), {}};
}

}  // namespace

std::optional<std::string> clear_text_password_warning(const ClientOptions& o) {
  if (o.tls || o.password.empty()) return std::nullopt;
  const auto local = [](const std::string& host) {
    return host == "localhost" || host.starts_with("127.") || host == "::1";
  };
  bool remote = !local(o.host);
  for (const auto& server : o.servers) remote = remote || !local(server.host);
  if (!remote) return std::nullopt;
  return "warning: the room password crosses the network in clear text (--tls encrypts it)";
}

LinkOptions link_options(const ClientOptions& o) {
  LinkOptions link;
  link.host = o.host;
  link.port = o.port;
  link.servers = o.servers;
  link.nick = o.nick;
  link.password = o.password;
  link.keepalive = o.keepalive;
  link.ping_interval = o.ping_interval;
  link.ping_timeout = o.ping_timeout;
  link.max_line = o.max_line;
  link.quit_wait = o.quit_wait;
  link.reconnect = o.reconnect;
  link.tls = o.tls;
  link.tls_pin = o.tls_pin;
  link.known_servers = o.known_servers;
  return link;
}

ChatClient::ChatClient(ClientOptions options, int input_fd, std::ostream& out, std::ostream& err)
    : options_(std::move(options)), input_fd_(input_fd), out_(out), err_(err), input_(options_.max_line) {}

int ChatClient::run() {
  main_thread_ = std::this_thread::get_id();
  LinkOptions link = link_options(options_);
  // No round-trip PINGs: nothing shows them, and a script's peer sees only its own lines.
  link.rtt_interval = Millis::zero();
  // Nobody is there to pick another nickname: a refused one ends the session (exit 1).
  link.give_up_when_refused = true;
  link_.emplace(std::move(link));
  link_->start();
  while (!exit_code_) {
    const bool reading = !input_done_ && (joined_ || (ever_joined_ && held_bytes_ < max_held_bytes));
    std::array<pollfd, 2> fds{{{link_->event_fd(), POLLIN, 0}, {reading ? input_fd_ : -1, POLLIN, 0}}};
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "poll");
    }
    // Events first: a line typed after the connection was lost is not read until a rejoin.
    if (fds[0].revents != 0) {
      for (const auto& event : link_->take_events()) {
        if (!exit_code_) handle(event);
      }
    }
    if (!exit_code_ && reading && fds[1].revents != 0) read_input();
  }
  link_.reset();  // joins the network thread; the socket is closed by then
  return *exit_code_;
}

void ChatClient::read_input() {
  assert_main_thread();
  std::array<char, 4096> buf;
  ssize_t n = ::read(input_fd_, buf.data(), buf.size());
  if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return;
  if (n < 0) {
    err_ << "chatclient: cannot read input: " << std::generic_category().message(errno) << std::endl;
    n = 0;  // treated as the end of input: leave politely
  }
  if (n == 0) {
    // A last line without LF (`printf 'bye' | chatclient ...`) is still sent.
    std::string last;
    if (input_.take_partial(last) && !handle_input(last)) return;
    quit("");
    return;
  }
  input_.feed({buf.data(), static_cast<std::size_t>(n)}, [&](const LineFramer::Piece& piece) {
    if (input_done_) return;  // after /quit the rest of the chunk is not sent
    if (piece.kind == LineFramer::Piece::Kind::too_long) {
      print_event(error_event("too-long", "the input line is longer than " + std::to_string(options_.max_line) +
                                              " bytes"));
      return;
    }
    handle_input(piece.text);
  });
}

bool ChatClient::handle_input(std::string_view line) {
  assert_main_thread();
  if (line.empty()) return true;  // an empty Enter is not worth an error line
  const auto earlier = parse_earlier(line);  // /history [n], /more [n]
  const ParseResult parsed = earlier ? *earlier : parse_text_input(line);
  if (const auto* refusal = std::get_if<Refusal>(&parsed)) {
    print_event(error_event(to_string(refusal->code), refusal->detail));
    return true;
  }
  Command cmd = std::get<Command>(parsed);
  if (cmd.verb == Verb::help) {
    for (const auto& help : help_lines()) print(help);
    print("***   /history [n]         print the n messages (50) before the oldest one printed");
    return true;
  }
  if (cmd.verb == Verb::history) {
    // Before the oldest event printed; none yet: before any id there can be.
    cmd.id = oldest_id_ != 0 ? oldest_id_ : static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  }
  if (cmd.verb == Verb::quit) {
    quit(cmd.text);
    return false;
  }
  if (format_command(cmd).size() > options_.max_line) {
    print_event(error_event("too-long", "with its command the line is longer than " +
                                            std::to_string(options_.max_line) + " bytes"));
    return true;
  }
  if (joined_) {
    link_->send(cmd);
  } else {
    held_bytes_ += format_command(cmd).size() + 1;
    held_.push_back(cmd);
  }
  return true;
}

// The Link sends QUIT, waits (bounded: quit_wait) for BYE or the close, so that the server has
// seen QUIT before we close, and then reports `ended`.
void ChatClient::quit(std::string reason) {
  assert_main_thread();
  input_done_ = true;
  link_->quit(std::move(reason));
}

void ChatClient::handle(const LinkEvent& event) {
  assert_main_thread();
  using K = LinkEvent::Kind;
  const auto count = [this]() -> std::optional<std::size_t> {
    if (!users_known_) return std::nullopt;
    return users_.size();
  };
  switch (event.kind) {
    case K::connecting:  // the first attempt is silent; a retry was announced already
      server_ = event.text;
      return;
    case K::rtt:
      return;
    case K::secured:
      print_stamped("*** " + secured_words(event));
      return;
    case K::certificate:
      // On stderr, as ssh says such things: a script's stdout holds the room alone.
      for (const auto& line : event.lines) err_ << line << '\n';
      err_.flush();
      return;
    case K::joined:
      joined_ = true;
      if (ever_joined_) {
        const bool renamed = !event.text.empty() && fold_nick(event.text) != fold_nick(event.nick);
        print_stamped("*** reconnected to " + server_ + ", rejoined as " + event.nick +
                      (renamed ? " (" + event.text + " is still taken, probably by our old connection)" : ""));
      } else {
        print_event(Event{Event::Kind::welcome, event.nick, {}, {}, {}, {}});
      }
      ever_joined_ = true;
      away_ms_.clear();
      for (const auto& cmd : held_) link_->send(cmd);
      held_.clear();
      held_bytes_ = 0;
      return;
    case K::resumed:
      // Our seat was kept; the missed block follows, opened by the marker.
      joined_ = true;
      ever_joined_ = true;
      away_ms_ = event.event.arg;
      print_stamped("*** reconnected to " + server_ + ", back in the room as " + event.nick);
      for (const auto& cmd : held_) link_->send(cmd);
      held_.clear();
      held_bytes_ = 0;
      return;
    case K::server: {
      const Event& e = event.event;
      if (event.history != History::none || e.kind == Event::Kind::history || e.kind == Event::Kind::history_end) {
        print_history(event);
        return;
      }
      note_id(e.id);
      switch (e.kind) {
        case Event::Kind::users:
          users_.clear();
          for (const auto& u : e.users) users_[fold_nick(u)] = u;
          users_known_ = true;
          print_event(e);
          return;
        case Event::Kind::join:
        case Event::Kind::back:
          users_[fold_nick(e.nick)] = e.nick;
          print_event(e, count());
          return;
        case Event::Kind::leave:
          users_.erase(fold_nick(e.nick));
          print_event(e, count());
          return;
        case Event::Kind::nick:
          if (users_.erase(fold_nick(e.nick)) > 0 || !users_known_) users_[fold_nick(e.arg)] = e.arg;
          print_event(e);
          return;
        default: print_event(e); return;
      }
    }
    case K::notice: print_stamped("*** " + event.text); return;
    case K::unreachable:
      // Before the first join this is a start-up failure: loud, on stderr, as it always was.
      if (ever_joined_) {
        print_stamped("*** " + event.text);
      } else {
        err_ << "chatclient: " << event.text << std::endl;
      }
      return;
    case K::refused:
      joined_ = false;
      print_event(event.event);
      err_ << "chatclient: cannot join as " << options_.nick << ": " << wording::refusal(event.event.code, event.event.text)
           << (options_.verbose ? wording::details(event.event.code, event.event.text) : "") << std::endl;
      return;
    case K::lost:
      joined_ = false;
      block_ = History::none;  // a block cut off by the loss ends here
      users_.clear();  // stale: a rejoin's USERS brings the room back
      users_known_ = false;
      print_stamped("*** disconnected: " + lost_words(event, options_.verbose));
      return;
    case K::retry:
      // One line per failed attempt. Before the first join a failure is a start-up problem:
      // on stderr, as when there is no retry.
      if (event.text.empty()) {
        print_stamped("*** " + reconnecting_words(event));
      } else if (ever_joined_) {
        print_stamped("*** " + event.text + trying_again_words(event));
      } else {
        err_ << "chatclient: " << event.text << trying_again_words(event) << std::endl;
      }
      return;
    case K::ended:
      if (!event.error) print_stamped("*** you left");
      exit_code_ = event.error ? exit_failure : exit_ok;
      return;
  }
}

void ChatClient::note_id(std::uint64_t id) {
  if (id != 0 && (oldest_id_ == 0 || id < oldest_id_)) oldest_id_ = id;
}

void ChatClient::print_history(const LinkEvent& event) {
  const Event& e = event.event;
  if (e.kind == Event::Kind::history) {
    block_ = event.history;
    block_lines_ = 0;
    // An empty recent block (a new room) says nothing; the missed block's marker is always
    // said, "nothing you missed" too.
    if (block_ == History::recent && (e.arg == "0" || e.arg.empty())) return;
    print(history_start_line(e, block_ == History::missed ? away_ms_ : std::string()));
    return;
  }
  if (e.kind == Event::Kind::history_end) {
    const History which = event.history;
    if (which == History::before || which == History::search || block_lines_ > 0) print(history_end_line(e));
    block_ = History::none;
    block_lines_ = 0;
    return;
  }
  // A line of the block: with the time it was said, changing nothing (the user list is the room
  // now). Search results are not the room's order: their ids are not where /history goes on.
  if (event.history != History::search) note_id(e.id);
  const auto when = e.time_ms > 0 ? std::chrono::system_clock::time_point(std::chrono::milliseconds(e.time_ms))
                                   : std::chrono::system_clock::now();
  if (auto line = render_line(e, when, std::nullopt, options_.verbose)) {
    ++block_lines_;
    print(*line);
  }
}

void ChatClient::print(std::string_view line) {
  // Flushed per line: a script reading our stdout through a pipe sees each event when it
  // happens, not when a buffer fills.
  out_ << line << std::endl;
}

void ChatClient::print_stamped(std::string_view text) {
  print("[" + clock_stamp(std::chrono::system_clock::now()) + "] " + std::string(text));
}

void ChatClient::print_event(const Event& event, std::optional<std::size_t> online) {
  if (auto line = render_line(event, std::chrono::system_clock::now(), online, options_.verbose)) print(*line);
}

void ChatClient::assert_main_thread() const { assert(std::this_thread::get_id() == main_thread_); }

}  // namespace chat
