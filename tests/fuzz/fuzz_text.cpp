// Fuzzes the text and nickname rules (common/text.hpp) against their definitions:
//   - check_text agrees with a checker built from the Unicode Standard's table of well-formed
//     UTF-8 (fuzz_support.hpp) and the control-character rule: bad-utf8 for ill-formed input,
//     else bad-char for C0 but TAB, DEL or C1, else none;
//   - nick_problem accepts exactly 1 to 24 bytes from A-Z a-z 0-9 _ ! - and gives a reason
//     otherwise;
//   - fold_nick lowers ASCII letters and nothing else, so two nicknames fold alike exactly when
//     they differ only in ASCII case, and a folded valid nickname is still valid.
#include "common/text.hpp"
#include "tests/fuzz/fuzz_support.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

using chat::TextProblem;
using chat::fuzz::escaped;

namespace {

std::string_view name(TextProblem p) {
  switch (p) {
    case TextProblem::none: return "none";
    case TextProblem::bad_utf8: return "bad_utf8";
    case TextProblem::bad_char: return "bad_char";
  }
  return "?";
}

TextProblem expected_problem(std::string_view text) {
  const auto cps = chat::fuzz::code_points(text);
  if (!cps) return TextProblem::bad_utf8;
  for (const char32_t cp : *cps) {
    if (chat::fuzz::is_forbidden_control(cp)) return TextProblem::bad_char;
  }
  return TextProblem::none;
}

bool is_nick_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '!' ||
         c == '-';
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
char upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto context = [&] { return "input '" + escaped(in) + "'"; };

  const TextProblem got = chat::check_text(in);
  const TextProblem want = expected_problem(in);
  FUZZ_CHECK(got == want, context() + ": check_text " + std::string(name(got)) + ", want " + std::string(name(want)));

  bool valid_nick = !in.empty() && in.size() <= chat::max_nick_length;
  for (const char c : in) valid_nick = valid_nick && is_nick_char(c);
  const auto problem = chat::nick_problem(in);
  FUZZ_CHECK(problem.has_value() != valid_nick, context() + (valid_nick ? ": valid nickname refused: " + *problem
                                                                        : ": invalid nickname accepted"));
  if (problem) FUZZ_CHECK(!problem->empty(), context() + ": empty reason");

  const std::string folded = chat::fold_nick(in);
  FUZZ_CHECK(folded.size() == in.size(), context() + ": fold_nick changed the length");
  std::string swapped(in);  // every ASCII letter in the other case
  for (std::size_t i = 0; i < in.size(); ++i) {
    FUZZ_CHECK(folded[i] == lower(in[i]), context() + ": fold_nick gave '" + escaped(folded) + "'");
    swapped[i] = in[i] == lower(in[i]) ? upper(in[i]) : lower(in[i]);
  }
  FUZZ_CHECK(chat::fold_nick(swapped) == folded, context() + ": the other case folds differently");
  FUZZ_CHECK(chat::fold_nick(folded) == folded, context() + ": fold_nick is not idempotent");
  if (valid_nick) FUZZ_CHECK(!chat::nick_problem(folded), context() + ": folded nickname is invalid");
  return 0;
}
