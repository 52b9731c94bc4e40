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
