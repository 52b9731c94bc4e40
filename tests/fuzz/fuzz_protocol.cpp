// Fuzzes both directions of the line protocol (common/protocol.hpp) with arbitrary lines:
//   - parse_protocol_line refuses a line that breaks the text rules (check_text) with bad-utf8
//     or bad-char, and only such a line; a command it accepts has a valid nickname where
//     it names one and text where it needs some, and format_command turns it back into a line
//     that parses to the same command;
//   - parse_event: an event it reads comes back the same through format_event and parse_event;
//   - an event as the server makes it (nicknames and codes one word, any text without LF) comes
//     back the same through format_event and parse_event, and formats to the same line again.
// The whole input is the line for the parsers; the event is built from the same bytes with
// FuzzedDataProvider.
#include "common/protocol.hpp"
#include "common/text.hpp"
#include "tests/fuzz/fuzz_support.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

using chat::Command;
using chat::ErrorCode;
using chat::Event;
using chat::Refusal;
using chat::TextProblem;
using chat::Verb;
using chat::fuzz::escaped;

namespace {

bool same(const Command& a, const Command& b) {
  return a.verb == b.verb && a.arg == b.arg && a.text == b.text && a.id == b.id && a.count == b.count &&
         a.duration == b.duration;
}

bool same(const Event& a, const Event& b) {
  return a.kind == b.kind && a.nick == b.nick && a.arg == b.arg && a.code == b.code && a.text == b.text &&
         a.users == b.users && a.id == b.id && a.time_ms == b.time_ms;
}

std::string describe(const Event& e) {
  std::string out = "kind " + std::to_string(static_cast<int>(e.kind)) + " nick '" + escaped(e.nick) + "' arg '" +
                    escaped(e.arg) + "' code '" + escaped(e.code) + "' text '" + escaped(e.text) + "' users";
  for (const auto& u : e.users) out += " '" + escaped(u) + "'";
  return out;
}

void check_protocol_line(std::string_view line) {
  const auto context = [&] { return "line '" + escaped(line) + "'"; };
  const chat::ParseResult result = chat::parse_protocol_line(line);
  const TextProblem problem = chat::check_text(line);
  if (const auto* refusal = std::get_if<Refusal>(&result)) {
    const auto refused_as = [&] { return context() + " refused as " + std::string(chat::to_string(refusal->code)); };
    switch (problem) {
      case TextProblem::bad_utf8: FUZZ_CHECK(refusal->code == ErrorCode::bad_utf8, refused_as()); break;
      case TextProblem::bad_char: FUZZ_CHECK(refusal->code == ErrorCode::bad_char, refused_as()); break;
      case TextProblem::none:
        FUZZ_CHECK(refusal->code != ErrorCode::bad_utf8 && refusal->code != ErrorCode::bad_char, refused_as());
        break;
    }
    return;
  }
  FUZZ_CHECK(problem == TextProblem::none, context() + " accepted despite the text rules");
  const Command& c = std::get<Command>(result);
  if (c.verb == Verb::hello || c.verb == Verb::nick || c.verb == Verb::priv) {
    FUZZ_CHECK(!chat::nick_problem(c.arg), context() + " accepted nickname '" + escaped(c.arg) + "'");
  }
  if (c.verb == Verb::say || c.verb == Verb::me || c.verb == Verb::priv) {
    FUZZ_CHECK(!c.text.empty(), context() + " accepted without text");
  }
  const std::string again = chat::format_command(c);
  if (c.verb == Verb::history) FUZZ_CHECK(c.count >= 1 && c.count <= chat::max_history_page, context() + " page size");
  if (c.verb == Verb::resume) FUZZ_CHECK(c.arg.size() >= 32, context() + " accepted a short token");
  if (c.verb == Verb::ban) {
    FUZZ_CHECK(!chat::nick_problem(c.arg), context() + " banned nickname '" + escaped(c.arg) + "'");
    FUZZ_CHECK(c.duration >= chat::min_ban && c.duration <= chat::max_ban, context() + " ban length");
  }
  const chat::ParseResult back = chat::parse_protocol_line(again);
  FUZZ_CHECK(std::holds_alternative<Command>(back) && same(std::get<Command>(back), c),
             context() + " formatted as '" + escaped(again) + "' does not parse back the same");
}

void check_event_line(std::string_view line) {
  const auto event = chat::parse_event(line);
  if (!event) return;
  // With its tag when it had one (ids, docs/protocol.md): the id and time come back too.
  const std::string again = chat::format_tagged(*event);
  const auto back = chat::parse_event(again);
  FUZZ_CHECK(back && same(*back, *event), "line '" + escaped(line) + "' read as " + describe(*event) +
                                              ", formatted as '" + escaped(again) + "', read back as " +
                                              (back ? describe(*back) : std::string("nothing")));
}

// A valid nickname (1 to 24 of A-Z a-z 0-9 _ ! -) from the input.
std::string make_nick(FuzzedDataProvider& in) {
  static constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_!-";
  std::string nick(in.ConsumeIntegralInRange<std::size_t>(1, chat::max_nick_length), 'x');
  for (char& c : nick) c = alphabet[in.ConsumeIntegralInRange<std::size_t>(0, alphabet.size() - 1)];
  return nick;
}

// Bytes without LF (a line's field) and, for one-word fields, without space; never empty
// if `word`.
std::string make_field(FuzzedDataProvider& in, bool word) {
  std::string s = in.ConsumeRandomLengthString(64);
  std::erase(s, '\n');
  if (word) {
    std::erase(s, ' ');
    if (s.empty()) s = "x";
  }
  return s;
}

void check_made_event(FuzzedDataProvider& in) {
  using K = Event::Kind;
  Event e{in.PickValueInArray({K::welcome, K::users, K::join, K::leave, K::msg, K::me, K::priv, K::nick, K::error,
                               K::bye, K::ping, K::pong, K::comment, K::back, K::token, K::resumed, K::history,
                               K::history_end}),
          {}, {}, {}, {}, {}};
  const auto number = [&] { return std::to_string(in.ConsumeIntegral<std::uint32_t>()); };
  switch (e.kind) {
    case K::welcome: case K::join: e.nick = make_nick(in); break;
    case K::users:
      for (auto n = in.ConsumeIntegralInRange<int>(0, 8); n > 0; --n) e.users.push_back(make_nick(in));
      break;
    case K::leave: e.nick = make_nick(in), e.code = make_field(in, true), e.text = make_field(in, false); break;
    case K::msg: case K::me: e.nick = make_nick(in), e.text = make_field(in, false); break;
    case K::priv: e.nick = make_nick(in), e.arg = make_nick(in), e.text = make_field(in, false); break;
    case K::nick: e.nick = make_nick(in), e.arg = make_nick(in); break;
    case K::error: case K::bye: e.code = make_field(in, true), e.text = make_field(in, false); break;
    case K::ping: case K::pong: e.arg = make_field(in, false); break;
    case K::comment: e.text = make_field(in, false); break;
    case K::back: e.nick = make_nick(in), e.arg = number(); break;
    case K::token: e.arg = make_field(in, true), e.text = number(); break;
    case K::resumed: e.nick = make_nick(in), e.arg = number(), e.text = number(); break;
    case K::history:
      e.code = make_field(in, true), e.arg = number(), e.text = in.ConsumeBool() ? "partial" : "";
      if (e.code == "END") e.code = "recent";  // "HISTORY END x" is the block's end
      break;
    case K::history_end: e.code = make_field(in, true); break;
  }
  // Room events may come tagged: the id and time come back through parse_event.
  if (chat::is_room_event(e.kind) || e.kind == K::priv) {
    if (in.ConsumeBool()) {
      e.id = in.ConsumeIntegralInRange<std::uint64_t>(1, UINT64_MAX);
      e.time_ms = in.ConsumeIntegralInRange<std::int64_t>(0, std::int64_t{1} << 50);
    }
  }
  const std::string line = chat::format_tagged(e);
  const auto back = chat::parse_event(line);
  FUZZ_CHECK(back && same(*back, e), describe(e) + " formatted as '" + escaped(line) + "', read back as " +
                                         (back ? describe(*back) : std::string("nothing")));
  FUZZ_CHECK(chat::format_tagged(*back) == line, describe(e) + " formatted as '" + escaped(line) + "' twice differs");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  check_protocol_line(line);
  check_event_line(line);
  FuzzedDataProvider in(data, size);
  check_made_event(in);
  return 0;
}
