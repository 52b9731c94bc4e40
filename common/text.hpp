// Text and nickname rules of the chat protocol (docs/protocol.md).
//
// Pure functions, no sockets, no state: safe to call from any thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace chat {

// What is wrong with a line of text, if anything.
enum class TextProblem {
  none,
  bad_utf8,  // not well-formed UTF-8 (overlong forms, surrogates and > U+10FFFF included)
  bad_char,  // a control character: C0 other than TAB, DEL, or C1 (U+0080..U+009F)
};

// Checks `text` (one line, without its line ending) against the protocol's text rules.
TextProblem check_text(std::string_view text);

inline constexpr std::size_t max_nick_length = 24;

// Nicknames: 1 to 24 characters from A-Z a-z 0-9 _ ! -.
// Returns a readable reason when `nick` is not a valid nickname, nullopt when it is.
std::optional<std::string> nick_problem(std::string_view nick);

// The form under which nicknames are compared: uniqueness ignores case.
std::string fold_nick(std::string_view nick);

}  // namespace chat
