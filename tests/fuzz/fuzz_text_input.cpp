// Fuzzes parse_text_input (common/protocol.hpp), which reads what people type: text-mode lines
// on the server and everything typed into chatclient. For an arbitrary line:
//   - a line that breaks the text rules (check_text) is refused with bad-utf8 or bad-char, and
//     only such a line;
//   - a plain line (not starting with / or @) is said as it is; //text says "/text";
//   - an accepted command has a valid nickname where it names one and text where it needs some;
//   - what chatclient sends for it (format_command) parses on the server (parse_protocol_line)
//     to the same command: what is typed is what the room gets.
#include "common/protocol.hpp"
#include "common/text.hpp"
#include "tests/fuzz/fuzz_support.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

using chat::Command;
using chat::ErrorCode;
using chat::Refusal;
using chat::TextProblem;
using chat::Verb;
using chat::fuzz::escaped;

namespace {

bool same(const Command& a, const Command& b) { return a.verb == b.verb && a.arg == b.arg && a.text == b.text; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  const auto context = [&] { return "typed '" + escaped(line) + "'"; };
  const chat::ParseResult result = chat::parse_text_input(line);
  const TextProblem problem = chat::check_text(line);

  if (const auto* refusal = std::get_if<Refusal>(&result)) {
    const auto refused_as = [&] { return context() + " refused as " + std::string(chat::to_string(refusal->code)); };
    switch (problem) {
      case TextProblem::bad_utf8: FUZZ_CHECK(refusal->code == ErrorCode::bad_utf8, refused_as()); break;
      case TextProblem::bad_char: FUZZ_CHECK(refusal->code == ErrorCode::bad_char, refused_as()); break;
      case TextProblem::none:
        FUZZ_CHECK(refusal->code != ErrorCode::bad_utf8 && refusal->code != ErrorCode::bad_char, refused_as());
        // Plain text and //text are always said.
        FUZZ_CHECK(line.empty() || line.starts_with('@') || (line.starts_with('/') && !line.starts_with("//")),
                   refused_as());
        break;
    }
    return 0;
  }
  FUZZ_CHECK(problem == TextProblem::none, context() + " accepted despite the text rules");
  const Command& c = std::get<Command>(result);

  if (line.starts_with("//")) {
    FUZZ_CHECK(same(c, Command{Verb::say, {}, std::string(line.substr(1))}), context() + " not said as /text");
  } else if (!line.starts_with('/') && !line.starts_with('@')) {
    FUZZ_CHECK(same(c, Command{Verb::say, {}, std::string(line)}), context() + " not said as it is");
  }
  if (c.verb == Verb::nick || c.verb == Verb::priv) {
    FUZZ_CHECK(!chat::nick_problem(c.arg), context() + " accepted nickname '" + escaped(c.arg) + "'");
  }
  if (c.verb == Verb::say || c.verb == Verb::me || c.verb == Verb::priv) {
    FUZZ_CHECK(!c.text.empty(), context() + " accepted without text");
  }
  // Text input never makes the protocol-only commands.
  FUZZ_CHECK(c.verb != Verb::hello && c.verb != Verb::ping && c.verb != Verb::pong && c.verb != Verb::stats,
             context() + " became " + chat::format_command(c));

  const std::string sent = chat::format_command(c);
  const chat::ParseResult received = chat::parse_protocol_line(sent);
  FUZZ_CHECK(std::holds_alternative<Command>(received) && same(std::get<Command>(received), c),
             context() + " sent as '" + escaped(sent) + "' does not parse back the same");
  return 0;
}
