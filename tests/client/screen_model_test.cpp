// Unit tests of client/screen_model.hpp and client/input_line.hpp: what each pane holds after
// a sequence of events, without a terminal. Times are fixed local times, built with mktime().
#include "client/screen_model.hpp"

#include <catch2/catch.hpp>

#include <ctime>

using namespace std::chrono_literals;
using chat::Category;
using chat::Event;
using chat::InputAction;
using chat::LinkEvent;
using chat::LinkState;
using chat::Moment;
using chat::ScreenModel;

namespace {

Moment at(int day, int hour, int minute, int second = 0) {
  std::tm t{};
  t.tm_year = 2024 - 1900;
  t.tm_mon = 4;  // May
  t.tm_mday = day;
  t.tm_hour = hour;
  t.tm_min = minute;
  t.tm_sec = second;
  t.tm_isdst = -1;
  const auto wall = std::chrono::system_clock::from_time_t(std::mktime(&t));
  // A steady time that moves with the wall time, for the countdown.
  const auto steady = std::chrono::steady_clock::time_point{} + std::chrono::hours(24 * day + hour) +
                      std::chrono::minutes(minute) + std::chrono::seconds(second);
  return {wall, steady};
}

LinkEvent server(Event e) {
  LinkEvent l;
  l.kind = LinkEvent::Kind::server;
  l.event = std::move(e);
  return l;
}
Event ev(Event::Kind kind, std::string nick = {}, std::string arg = {}, std::string code = {}, std::string text = {},
         std::vector<std::string> users = {}) {
  return Event{kind, std::move(nick), std::move(arg), std::move(code), std::move(text), std::move(users)};
}
LinkEvent link(LinkEvent::Kind kind) {
  LinkEvent l;
  l.kind = kind;
  return l;
}
LinkEvent joined(std::string nick, bool rejoin = false, std::string wanted = {}) {
  LinkEvent l = link(LinkEvent::Kind::joined);
  l.nick = std::move(nick);
  l.rejoin = rejoin;
  l.text = std::move(wanted);
  return l;
}

// The pane as text: "category|rendered" per line.
std::vector<std::string> pane(const ScreenModel& m) {
  std::vector<std::string> out;
  for (const auto& line : m.lines()) out.push_back(std::string(to_string(line.category)) + "|" + line.rendered());
  return out;
}

ScreenModel joined_model() {
  ScreenModel m("127.0.0.1:15600", "alice");
  m.apply(link(LinkEvent::Kind::connecting), at(14, 9, 0));
  m.apply(joined("alice"), at(14, 9, 0));
  m.apply(server(ev(Event::Kind::users, {}, {}, {}, {}, {"alice", "bob"})), at(14, 9, 0));
  return m;
}

}  // namespace

TEST_CASE("screen model: a session fills the panes with categories", "[screen_model]") {
  ScreenModel m = joined_model();
  m.apply(server(ev(Event::Kind::join, "Carol")), at(14, 9, 1));
  m.apply(server(ev(Event::Kind::msg, "bob", {}, {}, "hi")), at(14, 9, 2));
  m.apply(server(ev(Event::Kind::msg, "alice", {}, {}, "hello")), at(14, 9, 3));
  m.apply(server(ev(Event::Kind::me, "bob", {}, {}, "waves")), at(14, 9, 4));
  m.apply(server(ev(Event::Kind::priv, "bob", "alice", {}, "psst")), at(14, 9, 5));
  m.apply(server(ev(Event::Kind::priv, "alice", "bob", {}, "ok")), at(14, 9, 6));
  m.apply(server(ev(Event::Kind::leave, "bob", {}, "timeout", "no keepalive reply (reader, 16.0 s after last traffic)")),
          at(14, 9, 7));
  m.apply(server(ev(Event::Kind::error, {}, {}, "no-such-nick", "dave")), at(14, 9, 8));
  m.apply(server(ev(Event::Kind::nick, "Carol", "caroline")), at(14, 9, 9));

  const std::vector<std::string> expected{
      "date|--- Tuesday 14 May 2024 ---",
      "info|[09:00:00] *** welcome, alice (type /help for commands)",
      "info|[09:00:00] *** online (2): alice bob",
      "join|[09:01:00] Carol joined",
      "message|[09:02:00] <bob> hi",
      "own|[09:03:00] <alice> hello",
      "message|[09:04:00] * bob waves",
      "priv_in|[09:05:00] [private] bob -> alice: psst",
      "priv_out|[09:06:00] [private] alice -> bob: ok",
      "leave|[09:07:00] bob's connection timed out (no reply for 16 s)",
      "error|[09:08:00] *** nobody called dave is online",
      "info|[09:09:00] *** Carol is now known as caroline",
  };
  CHECK(pane(m) == expected);
  CHECK(m.users() == std::vector<std::string>{"alice", "caroline"});
  CHECK(m.state() == LinkState::joined);
}

TEST_CASE("screen model: leave lines say the cause in words", "[screen_model]") {
  ScreenModel m = joined_model();
  m.apply(server(ev(Event::Kind::leave, "bob", {}, "quit", "bye all")), at(14, 10, 0));
  m.apply(server(ev(Event::Kind::leave, "carol", {}, "closed", "connection closed by peer (poller, 2.1 s after last traffic)")),
          at(14, 10, 0));
  m.apply(server(ev(Event::Kind::leave, "dave", {}, "no-pong", "")), at(14, 10, 0));
  m.apply(server(ev(Event::Kind::leave, "eve", {}, "weird", "something")), at(14, 10, 0));
  const auto p = pane(m);
  REQUIRE(p.size() >= 4);
  CHECK(p[p.size() - 4] == "leave|[10:00:00] bob left (bye all)");
  CHECK(p[p.size() - 3] == "leave|[10:00:00] carol's connection closed");
  CHECK(p[p.size() - 2] == "leave|[10:00:00] dave stopped answering");
  CHECK(p[p.size() - 1] == "leave|[10:00:00] eve left");
  CHECK(m.users() == std::vector<std::string>{"alice"});
}

TEST_CASE("screen model: --verbose shows the server's detail after the words", "[screen_model]") {
  ScreenModel m = joined_model();
  m.show_details(true);
  m.apply(server(ev(Event::Kind::leave, "carol", {}, "closed", "connection closed by peer (poller, 2.1 s after last traffic)")),
          at(14, 10, 0));
  m.apply(server(ev(Event::Kind::error, {}, {}, "no-such-nick", "dave")), at(14, 10, 1));
  LinkEvent lost = link(LinkEvent::Kind::lost);
  lost.event = ev(Event::Kind::bye, {}, {}, "shutdown", "server shutting down");
  m.apply(lost, at(14, 10, 2));
  const auto p = pane(m);
  REQUIRE(p.size() >= 3);
  CHECK(p[p.size() - 3] ==
        "leave|[10:00:00] carol's connection closed [closed: connection closed by peer (poller, 2.1 s after last traffic)]");
  CHECK(p[p.size() - 2] == "error|[10:01:00] *** nobody called dave is online [no-such-nick]");
  CHECK(p[p.size() - 1] == "error|[10:02:00] *** disconnected: the server has stopped [shutdown: server shutting down]");
  // The status line keeps to the words.
  CHECK(m.status(at(14, 10, 2).steady).ends_with(" | lost: the server has stopped"));
}

TEST_CASE("screen model: a date line when the day changes", "[screen_model]") {
  ScreenModel m("h:1", "alice");
  m.notice("*** one", Category::info, at(14, 23, 59, 59));
  m.notice("*** two", Category::info, at(15, 0, 0, 1));
  m.notice("*** three", Category::info, at(15, 8, 0, 0));
  CHECK(pane(m) == std::vector<std::string>{"date|--- Tuesday 14 May 2024 ---", "info|[23:59:59] *** one",
                                            "date|--- Wednesday 15 May 2024 ---", "info|[00:00:01] *** two",
                                            "info|[08:00:00] *** three"});
}

TEST_CASE("screen model: the status line follows the connection", "[screen_model]") {
  ScreenModel m("127.0.0.1:15600", "alice");
  CHECK(m.status(at(14, 9, 0).steady) == "127.0.0.1:15600 | alice | connecting");
  m.apply(joined("alice"), at(14, 9, 0));
  CHECK(m.status(at(14, 9, 0).steady) == "127.0.0.1:15600 | alice | connected | rtt ?");
  LinkEvent rtt = link(LinkEvent::Kind::rtt);
  rtt.delay = chat::Millis{3};
  m.apply(rtt, at(14, 9, 0));
  CHECK(m.status(at(14, 9, 0).steady) == "127.0.0.1:15600 | alice | connected | rtt 3 ms");

  LinkEvent lost = link(LinkEvent::Kind::lost);
  lost.event = ev(Event::Kind::leave, {}, {}, "closed", "connection closed by peer");
  m.apply(lost, at(14, 9, 0, 10));
  LinkEvent retry = link(LinkEvent::Kind::retry);
  retry.delay = chat::Millis{1000};
  retry.attempt = 1;  // the first reconnect is attempt 1
  m.apply(retry, at(14, 9, 0, 10));
  CHECK(m.state() == LinkState::waiting_retry);
  CHECK(m.users().empty());
  CHECK(m.status(at(14, 9, 0, 10).steady) ==
        "127.0.0.1:15600 | alice | reconnecting in 1 s (attempt 1) | lost: the server closed the connection");
  auto p = pane(m);
  CHECK(p[p.size() - 2] == "error|[09:00:10] *** disconnected: the server closed the connection");
  CHECK(p[p.size() - 1] == "info|[09:00:10] *** reconnecting in 1.0 s");

  // A failed attempt: one line, and the status line counts.
  LinkEvent connecting = link(LinkEvent::Kind::connecting);
  connecting.attempt = 1;
  m.apply(connecting, at(14, 9, 0, 11));
  CHECK(m.status(at(14, 9, 0, 11).steady) ==
        "127.0.0.1:15600 | alice | reconnecting (attempt 1) | lost: the server closed the connection");
  const auto lines_before = pane(m).size();
  retry.delay = chat::Millis{4000};
  retry.attempt = 2;
  retry.text = "cannot connect to 127.0.0.1:15600: Connection refused";
  m.apply(retry, at(14, 9, 0, 11));
  p = pane(m);
  CHECK(p.size() == lines_before + 1);
  CHECK(p.back() == "error|[09:00:11] *** cannot connect to 127.0.0.1:15600: Connection refused; trying again in 4.0 s");
  CHECK(m.status(at(14, 9, 0, 11).steady) ==
        "127.0.0.1:15600 | alice | reconnecting in 4 s (attempt 2) | lost: the server closed the connection");
  CHECK(m.status(at(14, 9, 0, 12).steady + 500ms) ==
        "127.0.0.1:15600 | alice | reconnecting in 3 s (attempt 2) | lost: the server closed the connection");
  CHECK(m.next_status_change(at(14, 9, 0, 12).steady + 500ms) == at(14, 9, 0, 13).steady);

  m.apply(link(LinkEvent::Kind::connecting), at(14, 9, 0, 14));
  m.apply(joined("alice_", true, "alice"), at(14, 9, 0, 14));
  CHECK(m.nick() == "alice_");
  CHECK(pane(m).back() ==
        "info|[09:00:14] *** reconnected to 127.0.0.1:15600, rejoined as alice_ (alice is still taken, probably by "
        "our old connection)");
  CHECK(m.status(at(14, 9, 0, 14).steady) == "127.0.0.1:15600 | alice_ | connected | rtt ?");
}

TEST_CASE("screen model: our own rename changes the status and the categories", "[screen_model]") {
  ScreenModel m = joined_model();
  m.apply(server(ev(Event::Kind::nick, "alice", "alicia")), at(14, 9, 1));
  CHECK(m.nick() == "alicia");
  m.apply(server(ev(Event::Kind::msg, "alicia", {}, {}, "me again")), at(14, 9, 2));
  CHECK(m.lines().back().category == Category::own);
  CHECK(m.users() == std::vector<std::string>{"alicia", "bob"});
}

TEST_CASE("screen model: a refused nickname waits for /nick", "[screen_model]") {
  ScreenModel m("h:1", "bob");
  LinkEvent refused = link(LinkEvent::Kind::refused);
  refused.event = ev(Event::Kind::error, {}, {}, "nick-in-use", "bob");
  m.apply(refused, at(14, 9, 0));
  CHECK(m.state() == LinkState::choosing_nick);
  CHECK(pane(m)[1] == "error|[09:00:00] *** the nickname bob is taken");
  CHECK(m.status(at(14, 9, 0).steady) == "h:1 | bob | nickname refused: /nick <name>");
}

TEST_CASE("screen model: scrolling keeps the view while lines arrive", "[screen_model]") {
  ScreenModel m("h:1", "alice");
  for (int i = 0; i < 10; ++i) m.notice("line " + std::to_string(i), Category::message, at(14, 9, 0, i));
  CHECK(m.lines().size() == 11);  // and the date line
  m.scroll_up(3);
  CHECK(m.scroll_offset() == 3);
  m.notice("new", Category::message, at(14, 9, 1));
  CHECK(m.scroll_offset() == 4);  // the same lines stay on screen
  CHECK(m.status(at(14, 9, 1).steady).ends_with("| 4 more below (Page Down)"));
  m.scroll_up(100);
  CHECK(m.scroll_offset() == m.lines().size() - 1);
  m.scroll_down(5);
  CHECK(m.scroll_offset() == m.lines().size() - 6);
  m.scroll_down(100);
  CHECK(m.scroll_offset() == 0);
}

TEST_CASE("screen model: the pane is bounded, /clear empties it, the transcript keeps all", "[screen_model]") {
  ScreenModel m("h:1", "alice", 5);
  for (int i = 0; i < 8; ++i) m.notice("line " + std::to_string(i), Category::message, at(14, 9, 0, i));
  CHECK(m.lines().size() == 5);
  CHECK(m.lines().back().text == "line 7");
  m.clear();
  CHECK(m.lines().empty());
  m.notice("after", Category::info, at(14, 9, 1));
  CHECK(m.transcript() ==
        "--- Tuesday 14 May 2024 ---\n[09:00:00] line 0\n[09:00:01] line 1\n[09:00:02] line 2\n"
        "[09:00:03] line 3\n[09:00:04] line 4\n[09:00:05] line 5\n[09:00:06] line 6\n[09:00:07] line 7\n"
        "[09:01:00] after\n");
}

TEST_CASE("interpret_input: local commands and commands for the server", "[screen_model]") {
  using K = InputAction::Kind;
  CHECK(chat::interpret_input("").kind == K::none);
  CHECK(chat::interpret_input("/save /tmp/x.txt").kind == K::save);
  CHECK(chat::interpret_input("/save /tmp/x.txt").arg == "/tmp/x.txt");
  CHECK(chat::interpret_input("/save").kind == K::error);
  CHECK(chat::interpret_input("/savefile").kind == K::error);  // unknown /savefile
  CHECK(chat::interpret_input("/clear").kind == K::clear);
  CHECK(chat::interpret_input("/help").kind == K::help);
  const auto quit = chat::interpret_input("/quit gone fishing");
  CHECK(quit.kind == K::quit);
  CHECK(quit.command.text == "gone fishing");
  const auto at_msg = chat::interpret_input("@bob psst");
  CHECK(at_msg.kind == K::send);
  CHECK(at_msg.command.verb == chat::Verb::priv);
  CHECK(at_msg.command.arg == "bob");
  CHECK(at_msg.command.text == "psst");
  CHECK(chat::interpret_input("/msg bob hi").command.verb == chat::Verb::priv);
  CHECK(chat::interpret_input("/me waves").command.verb == chat::Verb::me);
  CHECK(chat::interpret_input("/nick al").command.verb == chat::Verb::nick);
  CHECK(chat::interpret_input("/who").command.verb == chat::Verb::who);
  CHECK(chat::interpret_input("hello").command.verb == chat::Verb::say);
  CHECK(chat::interpret_input("/frob").kind == K::error);
  // In the words every client uses (common/wording.hpp).
  CHECK(chat::interpret_input("/frob").arg == "unknown command: /frob (type /help for the commands)");
  CHECK(chat::interpret_input("/msg bob").arg == "usage: /msg <nick> <text>");
}


TEST_CASE("input line: editing", "[input_line]") {
  chat::InputLine in;
  in.insert("helo");
  in.left();
  in.insert("l");
  CHECK(in.text() == "hello");
  CHECK(in.cursor() == 4);
  in.end();
  in.insert(" w\xC3\xB6rld");  // ö is two bytes
  in.backspace();
  in.backspace();
  in.backspace();
  CHECK(in.text() == "hello w\xC3\xB6");
  in.left();
  CHECK(in.cursor() == 7);  // before the whole ö
  in.erase();
  CHECK(in.text() == "hello w");
  in.kill_word();
  CHECK(in.text() == "hello ");
  in.home();
  in.right();
  in.kill_to_end();
  CHECK(in.text() == "h");
  in.insert("ey");
  in.kill_to_start();
  CHECK(in.text() == "");
  CHECK(in.cursor() == 0);
}

TEST_CASE("input line: history with Up and Down keeps the draft", "[input_line]") {
  chat::InputLine in;
  in.insert("one");
  CHECK(in.submit() == "one");
  in.insert("two");
  in.submit();
  in.insert("two");
  in.submit();  // a repeat is stored once
  in.insert("draft");
  in.history_up();
  CHECK(in.text() == "two");
  in.history_up();
  CHECK(in.text() == "one");
  in.history_up();
  CHECK(in.text() == "one");
  in.history_down();
  CHECK(in.text() == "two");
  in.history_down();
  CHECK(in.text() == "draft");
  CHECK(in.cursor() == 5);
  in.history_down();
  CHECK(in.text() == "draft");
}

// ---- history: recent, missed (the resume marker), scroll-back, search ---------------------

using chat::History;

namespace {

// A server event from a history block `h`, tagged with `id` and the time `when`.
LinkEvent in_block(History h, Event e, std::uint64_t id, const Moment& when) {
  e.id = id;
  e.time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(when.wall.time_since_epoch()).count();
  LinkEvent l = server(std::move(e));
  l.history = h;
  return l;
}
// "HISTORY <what> <n> [partial]" and "HISTORY END <what>".
LinkEvent block_start(History h, std::size_t n, bool partial = false) {
  LinkEvent l = server(ev(Event::Kind::history, {}, std::to_string(n), std::string(to_string(h)), partial ? "partial" : ""));
  l.history = h;
  return l;
}
LinkEvent block_end(History h) {
  LinkEvent l = server(ev(Event::Kind::history_end, {}, {}, std::string(to_string(h))));
  l.history = h;
  return l;
}
LinkEvent live(Event e, std::uint64_t id) {
  e.id = id;
  return server(std::move(e));
}
LinkEvent resumed(std::string nick, std::string away_ms, std::string missed) {
  LinkEvent l = link(LinkEvent::Kind::resumed);
  l.nick = nick;
  l.rejoin = true;
  l.event = ev(Event::Kind::resumed, std::move(nick), std::move(away_ms), {}, std::move(missed));
  return l;
}

// The pane as "category|rendered", history lines with an "h " in front.
std::vector<std::string> marked_pane(const ScreenModel& m) {
  std::vector<std::string> out;
  for (const auto& line : m.lines()) {
    out.push_back((line.history ? "h " : "") + std::string(to_string(line.category)) + "|" + line.rendered());
  }
  return out;
}

}  // namespace

TEST_CASE("screen model: the recent history is shown apart, with the times it was said", "[screen_model][history]") {
  ScreenModel m("h:1", "alice");
  m.apply(joined("alice"), at(14, 9, 0));
  m.apply(server(ev(Event::Kind::users, {}, {}, {}, {}, {"alice", "bob"})), at(14, 9, 0));
  m.apply(block_start(History::recent, 3), at(14, 9, 0));
  m.apply(in_block(History::recent, ev(Event::Kind::msg, "bob", {}, {}, "yesterday's news"), 7, at(13, 22, 15)), at(14, 9, 0));
  m.apply(in_block(History::recent, ev(Event::Kind::join, "carol"), 9, at(14, 8, 30)), at(14, 9, 0));
  m.apply(in_block(History::recent, ev(Event::Kind::leave, "carol", {}, "quit", "later"), 11, at(14, 8, 45)), at(14, 9, 0));
  m.apply(block_end(History::recent), at(14, 9, 0));
  m.apply(live(ev(Event::Kind::msg, "bob", {}, {}, "now then"), 12), at(14, 9, 1));

  CHECK(marked_pane(m) == std::vector<std::string>{
                              "date|--- Tuesday 14 May 2024 ---",
                              "info|[09:00:00] *** welcome, alice (type /help for commands)",
                              "info|[09:00:00] *** online (2): alice bob",
                              "separator|--- earlier messages (3) ---",
                              "date|--- Monday 13 May 2024 ---",
                              "h message|[22:15:00] <bob> yesterday's news",
                              "date|--- Tuesday 14 May 2024 ---",
                              "h join|[08:30:00] carol joined",
                              "h leave|[08:45:00] carol left (later)",
                              "separator|--- now ---",
                              "message|[09:01:00] <bob> now then",
                          });
  // History changes nothing: carol's join and leave are the past, the list is USERS'.
  CHECK(m.users() == std::vector<std::string>{"alice", "bob"});
  CHECK(m.oldest_id() == 7);

  // An empty room: no separators at all.
  ScreenModel empty("h:1", "alice");
  empty.apply(joined("alice"), at(14, 9, 0));
  empty.apply(block_start(History::recent, 0), at(14, 9, 0));
  empty.apply(block_end(History::recent), at(14, 9, 0));
  CHECK(empty.lines().size() == 2);  // the date and the welcome
}

TEST_CASE("screen model: after a resume the marker says how long we were away and how much we missed",
          "[screen_model][history]") {
  ScreenModel m = joined_model();
  LinkEvent lost = link(LinkEvent::Kind::lost);
  lost.event = ev(Event::Kind::leave, {}, {}, "reset", "connection reset by peer");
  m.apply(lost, at(14, 9, 10));
  m.apply(resumed("alice", "41000", "2"), at(14, 9, 11));
  CHECK(m.state() == LinkState::joined);
  m.apply(server(ev(Event::Kind::users, {}, {}, {}, {}, {"alice", "bob", "carol"})), at(14, 9, 11));
  m.apply(block_start(History::missed, 2), at(14, 9, 11));
  m.apply(in_block(History::missed, ev(Event::Kind::join, "carol"), 30, at(14, 9, 10, 20)), at(14, 9, 11));
  m.apply(in_block(History::missed, ev(Event::Kind::msg, "carol", {}, {}, "where is alice?"), 31, at(14, 9, 10, 40)),
          at(14, 9, 11));
  m.apply(block_end(History::missed), at(14, 9, 11));
  m.apply(live(ev(Event::Kind::msg, "bob", {}, {}, "she's back"), 32), at(14, 9, 12));

  auto p = marked_pane(m);
  const std::vector<std::string> tail(p.end() - 7, p.end());
  CHECK(tail == std::vector<std::string>{
                    "info|[09:11:00] *** reconnected to 127.0.0.1:15600, back in the room as alice",
                    "info|[09:11:00] *** online (3): alice bob carol",
                    "separator|--- away 41 s, 2 messages you missed ---",
                    "h join|[09:10:20] carol joined",
                    "h message|[09:10:40] <carol> where is alice?",
                    "separator|--- now ---",
                    "message|[09:12:00] <bob> she's back",
                });
  CHECK(m.users() == std::vector<std::string>{"alice", "bob", "carol"});
  CHECK(m.status(at(14, 9, 12).steady) == "127.0.0.1:15600 | alice | connected | rtt ?");

  // Nothing missed: the marker says so, and no "now" follows an empty block.
  m.apply(lost, at(14, 9, 20));
  m.apply(resumed("alice", "3200", "0"), at(14, 9, 21));
  m.apply(block_start(History::missed, 0), at(14, 9, 21));
  m.apply(block_end(History::missed), at(14, 9, 21));
  CHECK(pane(m).back() == "separator|--- away 3 s, nothing you missed ---");
  // One missed, and some older ones no longer kept.
  m.apply(lost, at(14, 10, 0));
  m.apply(resumed("alice", "125000", "1"), at(14, 10, 5));
  m.apply(block_start(History::missed, 1, /*partial=*/true), at(14, 10, 5));
  CHECK(pane(m).back() == "separator|--- away 2 min 5 s, 1 message you missed (older ones are no longer kept) ---");
}

TEST_CASE("screen model: scroll-back asks before the oldest id and inserts the answer above", "[screen_model][history]") {
  ScreenModel m("h:1", "alice");
  const Moment now = at(14, 9, 0);
  // Not joined: nothing to ask, and /more says why.
  CHECK_FALSE(m.request_earlier(50, now, true));
  CHECK(pane(m).back() == "info|[09:00:00] *** not connected: earlier messages come from the server");
  m.apply(joined("alice"), now);
  m.apply(block_start(History::recent, 2), now);
  m.apply(in_block(History::recent, ev(Event::Kind::msg, "bob", {}, {}, "forty"), 40, at(14, 8, 40)), now);
  m.apply(in_block(History::recent, ev(Event::Kind::msg, "bob", {}, {}, "forty-one"), 41, at(14, 8, 41)), now);
  m.apply(block_end(History::recent), now);
  m.scroll_up(2);
  const auto before = m.lines().size();
  const auto offset = m.scroll_offset();

  auto ask = m.request_earlier(2, now, false);
  REQUIRE(ask);
  CHECK(chat::format_command(*ask) == "HISTORY BEFORE 40 2");
  CHECK(m.status(now.steady).find("| loading earlier messages") != std::string::npos);
  CHECK_FALSE(m.request_earlier(2, now, false));  // one question at a time

  m.apply(block_start(History::before, 2), now);
  m.apply(in_block(History::before, ev(Event::Kind::msg, "carol", {}, {}, "twelve"), 12, at(13, 23, 0)), now);
  m.apply(in_block(History::before, ev(Event::Kind::me, "alice", {}, {}, "waves"), 20, at(14, 7, 0)), now);
  CHECK(m.lines().size() == before);  // held until the block is complete
  m.apply(block_end(History::before), now);

  const std::vector<std::string> top{
      "separator|--- earlier messages (2) ---",
      "date|--- Monday 13 May 2024 ---",
      "h message|[23:00:00] <carol> twelve",
      "date|--- Tuesday 14 May 2024 ---",
      "h own|[07:00:00] * alice waves",
  };
  auto p = marked_pane(m);
  CHECK(std::vector<std::string>(p.begin(), p.begin() + 5) == top);
  CHECK(p[5] == "date|--- Tuesday 14 May 2024 ---");  // what was the top before
  CHECK(m.lines().size() == before + 5);
  CHECK(m.lines_above() == 5);
  CHECK(m.scroll_offset() == offset);  // the view stays on the same lines
  CHECK(m.oldest_id() == 12);
  CHECK_FALSE(m.earlier_pending());
  CHECK(m.transcript().starts_with("--- earlier messages (2) ---\n--- Monday 13 May 2024 ---\n[23:00:00] <carol> twelve\n"));

  // The next page asks before 12; an answer with fewer than asked is the start of the history.
  ask = m.request_earlier(50, now, false);
  REQUIRE(ask);
  CHECK(chat::format_command(*ask) == "HISTORY BEFORE 12 50");
  m.apply(block_start(History::before, 1), now);
  m.apply(in_block(History::before, ev(Event::Kind::msg, "bob", {}, {}, "first ever"), 2, at(13, 22, 0)), now);
  m.apply(block_end(History::before), now);
  p = marked_pane(m);
  CHECK(p[0] == "separator|--- the start of what the server keeps ---");
  CHECK(p[1] == "separator|--- earlier messages (1) ---");
  CHECK(p[3] == "h message|[22:00:00] <bob> first ever");
  CHECK(m.at_history_start());
  CHECK_FALSE(m.request_earlier(50, now, true));
  CHECK(pane(m).back() == "info|[09:00:00] *** nothing earlier: the top is the start of what the server keeps");
}

TEST_CASE("screen model: a scroll-back question refused or lost can be asked again", "[screen_model][history]") {
  ScreenModel m = joined_model();
  m.apply(live(ev(Event::Kind::msg, "bob", {}, {}, "hi"), 5), at(14, 9, 1));
  REQUIRE(m.request_earlier(50, at(14, 9, 1), false));
  m.apply(server(ev(Event::Kind::error, {}, {}, "no-history", "the archive is not available")), at(14, 9, 2));
  CHECK_FALSE(m.earlier_pending());
  REQUIRE(m.request_earlier(50, at(14, 9, 2), false));
  m.apply(block_start(History::before, 3), at(14, 9, 2));  // cut off by a loss
  LinkEvent lost = link(LinkEvent::Kind::lost);
  lost.event = ev(Event::Kind::leave, {}, {}, "reset", "connection reset by peer");
  m.apply(lost, at(14, 9, 3));
  CHECK_FALSE(m.earlier_pending());
  m.apply(resumed("alice", "1000", "0"), at(14, 9, 4));
  auto ask = m.request_earlier(50, at(14, 9, 4), false);
  REQUIRE(ask);
  CHECK(ask->id == 5);
  // An empty room (no id held yet) asks before any id there can be.
  ScreenModel fresh("h:1", "alice");
  fresh.apply(joined("alice"), at(14, 9, 0));
  ask = fresh.request_earlier(50, at(14, 9, 0), false);
  REQUIRE(ask);
  CHECK(ask->id == 9223372036854775807ULL);
  fresh.apply(block_start(History::before, 0), at(14, 9, 0));
  fresh.apply(block_end(History::before), at(14, 9, 0));
  CHECK(pane(fresh).front() == "separator|--- nothing earlier: this is the start of what the server keeps ---");
}

TEST_CASE("screen model: search results are a block of their own", "[screen_model][history]") {
  ScreenModel m = joined_model();
  m.apply(live(ev(Event::Kind::msg, "bob", {}, {}, "hi"), 50), at(14, 9, 1));
  m.apply(block_start(History::search, 2), at(14, 9, 2));
  m.apply(in_block(History::search, ev(Event::Kind::msg, "bob", {}, {}, "cats are great"), 3, at(12, 10, 0)), at(14, 9, 2));
  m.apply(in_block(History::search, ev(Event::Kind::me, "carol", {}, {}, "likes cats"), 49, at(14, 8, 0)), at(14, 9, 2));
  m.apply(block_end(History::search), at(14, 9, 2));
  auto p = marked_pane(m);
  const std::vector<std::string> tail(p.end() - 6, p.end());
  CHECK(tail == std::vector<std::string>{
                    "separator|--- found (2) ---",
                    "date|--- Sunday 12 May 2024 ---",
                    "h message|[10:00:00] <bob> cats are great",
                    "date|--- Tuesday 14 May 2024 ---",
                    "h message|[08:00:00] * carol likes cats",
                    "separator|--- end of search ---",
                });
  CHECK(m.oldest_id() == 50);  // search results are not where scroll-back goes on from
  // Nothing found: still a block, so the question has an answer.
  m.apply(block_start(History::search, 0), at(14, 9, 3));
  m.apply(block_end(History::search), at(14, 9, 3));
  p = pane(m);
  CHECK(p[p.size() - 2] == "separator|--- found (0) ---");
  CHECK(p.back() == "separator|--- end of search ---");
}

TEST_CASE("interpret_input: /more and /history ask for earlier messages", "[screen_model][history]") {
  using K = InputAction::Kind;
  auto more = chat::interpret_input("/more");
  CHECK(more.kind == K::earlier);
  CHECK(more.command.count == 50);
  more = chat::interpret_input("/history 120");
  CHECK(more.kind == K::earlier);
  CHECK(more.command.count == 120);
  CHECK(chat::interpret_input("/more 0").kind == K::error);
  CHECK(chat::interpret_input("/more 501").kind == K::error);
  CHECK(chat::interpret_input("/history lots").arg == "usage: /history [n] (n: 1 to 500)");
  CHECK(chat::interpret_input("/moreover").kind == K::error);  // an unknown command, not /more
  auto search = chat::interpret_input("/search cats dogs");
  CHECK(search.kind == K::send);
  CHECK(chat::format_command(search.command) == "SEARCH cats dogs");
}
