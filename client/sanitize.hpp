// Sanitising text that came from the network before it reaches a terminal.
//
// chatserver refuses lines with control characters or bad UTF-8 (docs/protocol.md, "Nicknames
// and text"), but chatclient must not rely on that: a malicious or broken server, or a proxy,
// could send anything. Whatever sanitize() returns is one line of well-formed UTF-8 that holds
// no C0 or C1 control character, no DEL, no escape sequence and no Unicode bidirectional
// control, so it cannot move the cursor, change colours, set the window title, clear the
// screen, start a new line (not even in a Qt window) or reorder the text around it (a "Trojan Source" style override).
//
// Pure functions, no state: safe from any thread.
#pragma once

#include <string>
#include <string_view>

namespace chat {

// What replaces a removed character or sequence: U+FFFD REPLACEMENT CHARACTER, visible, so the
// reader knows something was there.
inline constexpr std::string_view replacement_char = "\xEF\xBF\xBD";

// Returns `text` made safe for a terminal:
//   - ESC and the sequence it starts (CSI "ESC [ ... final", OSC/DCS/APC/PM/SOS "ESC ] ... BEL
//     or ESC \", or a two-byte "ESC x") become one U+FFFD;
//   - C1 controls (U+0080..U+009F, which some terminals treat like "ESC x": U+009B is CSI)
//     and the strings an 8-bit CSI/OSC/DCS introduces, likewise;
//   - other C0 controls (CR, LF, BS, BEL, ...) and DEL become U+FFFD; TAB becomes a space;
//   - bidi controls U+202A..U+202E, U+2066..U+2069, U+200E, U+200F, U+061C become U+FFFD;
//   - U+2028, U+2029, U+FDD0 and U+FDD1, where some renderers (Qt's text widgets) start a new
//     line, become U+FFFD;
//   - bytes that are not well-formed UTF-8 (overlong forms, surrogates, > U+10FFFF,
//     truncated sequences) become one U+FFFD per bad byte.
std::string sanitize(std::string_view text);

// True if `text` would come back from sanitize() unchanged.
bool is_sanitized(std::string_view text);

}  // namespace chat
