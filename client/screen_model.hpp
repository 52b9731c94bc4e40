// ScreenModel: what interactive chatclient shows, without a terminal. The message pane (lines
// with a stamp and a colour category, date lines, scroll position), the user list, the status
// line and the input line; plus the transcript that /save writes. client/tui.cpp only draws it.
//
// It is fed LinkEvents (client/link_event.hpp) from the network thread, already sanitised, and
// notices of the UI's own; each takes the time it happened, so tests drive it with fixed times.
//
// History (docs/protocol.md, "Ids, resume and history"): lines from the server's history are
// kept apart from what happens now. They carry their own time (when they were said), are marked
// `history` (the views dim them), and sit between separator lines: "--- earlier messages (12)
// ---" ... "--- now ---" after joining, "--- away 41 s, 12 messages you missed ---" ... "---
// now ---" after a resume, "--- found (3) ---" ... "--- end of search ---" for /search. Scroll-
// back (request_earlier(): PageUp at the top, /more, Qt's "load earlier") asks the server for
// the messages before the oldest one held and inserts the answer above everything else.
//
// Not thread safe: the UI thread creates, uses and destroys it (the network thread never sees
// it; its events reach the model through Link::take_events() on the UI thread).
#pragma once

#include "client/input_line.hpp"
#include "client/link_event.hpp"
#include "common/protocol.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace chat {

// What a line means, which decides its colour (PoshChat's colours): joins and leaves green,
// errors and lost connections red, private messages received orange and sent blue.
enum class Category {
  message,   // <nick> text, * nick action
  own,       // our own public message or action
  join,      // green
  leave,     // green
  error,     // red: ERROR replies, lost connections, failures
  priv_in,   // orange: a private message to us
  priv_out,  // blue: a private message we sent
  info,      // the client's and server's notices: welcome, online list, renames, reconnecting
  date,      // "--- Tuesday 14 May 2024 ---" when the day changes
  separator, // around history: "--- earlier messages (12) ---", "--- now ---", and the resume
             // marker "--- away 41 s, 12 messages you missed ---"
};
std::string_view to_string(Category category);

// The moment an event is applied: the wall clock for stamps and dates, the steady clock for
// the reconnect countdown.
struct Moment {
  std::chrono::system_clock::time_point wall;
  std::chrono::steady_clock::time_point steady;
  static Moment now() { return {std::chrono::system_clock::now(), std::chrono::steady_clock::now()}; }
};

struct ScreenLine {
  std::string stamp;  // "14:02:09" (local time); empty for date lines
  std::string text;
  Category category;
  // The protocol's detail of a leave, goodbye or refusal ("no-pong: no reply to PING within
  // 10.0 s (poller, 16.2 s after last traffic)"), for whoever asks: chatclient-qt shows it
  // when the pointer rests on the line. Empty for other lines.
  std::string detail = {};
  // The event's id (docs/protocol.md: tagged lines), 0 for a line without one.
  std::uint64_t id = 0;
  // A line from the server's history (said before now, stamped with its own time): the views
  // dim it. The separators around it are not history lines.
  bool history = false;
  // "[14:02:09] text", or the date line as it is.
  std::string rendered() const;
};

// The connection as the status line shows it.
enum class LinkState { connecting, joined, waiting_retry, choosing_nick, offline };

// What the UI thread should do with a line the user entered.
struct InputAction {
  enum class Kind { none, send, quit, save, clear, help, error, earlier };
  Kind kind = Kind::none;
  Command command{Verb::say, {}, {}};  // send: the command; quit: text = reason;
                                       // earlier: count = how many (/more [n], /history [n])
  std::string arg;                     // save: the file name; error: the message
};
// "/save FILE", "/clear", "/help", "/more [n]", "/history [n]" and "/quit [reason]" are the
// client's; everything else goes through parse_text_input() (common/protocol.hpp), like script
// mode's input.
InputAction interpret_input(std::string_view line);

// "/more [n]" or "/history [n]" (n: 1 to 500, history_page when left out): a Command with
// verb history and count = n (the id is the caller's: the oldest it holds); a Refusal for a bad
// n; nullopt for any other line. Shared by script mode and the windowed clients.
std::optional<ParseResult> parse_earlier(std::string_view line);

class ScreenModel {
 public:
  // `server` is shown in the status line ("127.0.0.1:15600"); `nick` is the one we ask for.
  ScreenModel(std::string server, std::string nick, std::size_t max_lines = 10'000);

  // --verbose: each leave, goodbye and refusal also shows the protocol's detail (which server
  // thread noticed, when) after its words, in brackets.
  void show_details(bool on) { details_ = on; }

  // ---- feeding ----
  void apply(const LinkEvent& event, const Moment& at);
  // A line of the client's own (help, /save result, input errors).
  void notice(std::string text, Category category, const Moment& at);
  // /clear: empties the message pane (the transcript keeps everything).
  void clear();

  // ---- message pane ----
  const std::deque<ScreenLine>& lines() const { return lines_; }
  // Lines added since start-up (date lines too, and those /clear or the limit removed since): a
  // view that appends (the Qt window) takes the last `lines_added() - shown` of lines().
  std::uint64_t lines_added() const { return lines_added_; }
  // Lines inserted above the others since start-up (scroll-back answers): such a view takes the
  // first `lines_above() - shown above` of lines() and puts them at its top.
  std::uint64_t lines_above() const { return lines_above_; }
  // How many lines are hidden below the bottom of the pane (0: following the conversation).
  std::size_t scroll_offset() const { return scroll_; }
  void scroll_up(std::size_t n);
  void scroll_down(std::size_t n);
  void scroll_to_end() { scroll_ = 0; }

  // ---- history ----
  // Scroll-back: the HISTORY BEFORE command asking for `count` messages before the oldest one
  // held, for the UI to hand to the Link; nullopt when there is nothing to ask (not joined, a
  // request already waiting for its answer, or the server has nothing earlier). `explain`: say
  // why in a notice (for /more; PageUp held at the top stays quiet).
  std::optional<Command> request_earlier(std::size_t count, const Moment& at, bool explain);
  bool earlier_pending() const { return earlier_pending_; }
  // True once an answer held fewer lines than asked: the start of what the server keeps.
  bool at_history_start() const { return at_start_; }
  // The smallest id of the room's events held (live, recent, missed, scroll-back; not search
  // results), 0 while none.
  std::uint64_t oldest_id() const { return oldest_id_; }

  // ---- user list, sorted ignoring case ----
  std::vector<std::string> users() const;
  const std::string& nick() const { return nick_; }

  // ---- status line ----
  LinkState state() const { return state_; }
  std::optional<Millis> rtt() const { return rtt_; }
  // Why the last connection was lost, in words ("no reply to PING within 10 s"), until the next
  // join; the status shows it while reconnecting or offline.
  const std::string& lost_reason() const { return lost_reason_; }
  // e.g. "127.0.0.1:15600 | alice | connected | rtt 1 ms", "... | connected over TLSv1.3 | ..." or
  // "127.0.0.1:15600 | alice | reconnecting in 4 s (attempt 3) | lost: connection closed by peer".
  std::string status(std::chrono::steady_clock::time_point now) const;
  // When the status text next changes by itself (the countdown), if it does.
  std::optional<std::chrono::steady_clock::time_point> next_status_change(
      std::chrono::steady_clock::time_point now) const;

  // ---- input line ----
  InputLine& input() { return input_; }
  const InputLine& input() const { return input_; }

  // ---- /save ----
  // Every line since start-up (also those /clear removed), as plain text, one per line.
  std::string transcript() const;

 private:
  void add(std::string text, Category category, const Moment& at, std::string detail = {});
  // Appends `line`; `day`: its time, to start a new date line when the day changed (none for
  // separators, which belong to no day).
  void append(ScreenLine line, std::optional<std::chrono::system_clock::time_point> day);
  void separator(std::string text);
  void server_event(const Event& e, const Moment& at);
  void history_event(const LinkEvent& ev, const Moment& at);
  void insert_earlier(const Moment& at);  // the scroll-back block received: above everything
  // The line for a room event or private message, without touching the room's state (history
  // lines use it as they are; live ones after updating the user list); nullopt: not shown.
  std::optional<ScreenLine> line_for(const Event& e) const;
  void note_id(std::uint64_t id);

  // Most lines one history block may hold here; the server sends at most 500 for HISTORY
  // BEFORE and SEARCH. Lines past it are counted and not kept (bounded memory).
  static constexpr std::size_t max_block_lines = 1000;

  std::string server_;
  std::string nick_;
  std::size_t max_lines_;

  std::deque<ScreenLine> lines_;
  std::uint64_t lines_added_ = 0;
  std::uint64_t lines_above_ = 0;
  std::size_t scroll_ = 0;
  std::deque<std::string> transcript_;  // a deque: scroll-back answers go in at the front
  std::optional<int> last_day_;  // tm_year * 400 + tm_yday of the last stamped line

  std::map<std::string, std::string> users_;  // fold_nick() -> nickname

  LinkState state_ = LinkState::connecting;
  std::chrono::steady_clock::time_point retry_at_{};
  int attempt_ = 0;
  bool details_ = false;
  std::optional<Millis> rtt_;
  std::string tls_;  // "TLSv1.3" while connected over TLS (`secured`), else ""
  std::string lost_reason_;

  // History.
  History block_ = History::none;   // the block being received, if any
  std::size_t block_lines_ = 0;     // lines shown of it so far
  std::string away_ms_;             // from the last RESUMED, for the marker of the missed block
  std::optional<Event> earlier_start_;  // the HISTORY before line of the answer being received
  std::vector<ScreenLine> earlier_;     // its lines (at most max_block_lines), with their times
  std::vector<std::chrono::system_clock::time_point> earlier_times_;
  bool earlier_pending_ = false;    // a HISTORY BEFORE was handed out and not yet answered
  std::size_t earlier_asked_ = 0;   // how many it asked for
  bool at_start_ = false;           // an answer held fewer than asked: nothing earlier
  std::uint64_t oldest_id_ = 0;

  InputLine input_;
};

}  // namespace chat
