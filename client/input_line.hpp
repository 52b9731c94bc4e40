// InputLine: the line being typed in interactive mode, with editing and history (Up / Down).
// Terminal-free: the UI thread (client/tui.cpp) feeds it keys and draws text() and cursor().
//
// Not thread safe: the UI thread creates, uses and destroys it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace chat {

class InputLine {
 public:
  explicit InputLine(std::size_t max_history = 500) : max_history_(max_history) {}

  const std::string& text() const { return text_; }
  std::size_t cursor() const { return cursor_; }  // byte offset, always on a code point boundary

  void insert(std::string_view utf8);  // at the cursor; the cursor moves past it
  void backspace();                    // deletes the code point before the cursor
  void erase();                        // deletes the code point at the cursor (Delete)
  void left();
  void right();
  void home();
  void end();
  void kill_to_end();    // Ctrl-K
  void kill_to_start();  // Ctrl-U
  void kill_word();      // Ctrl-W: the word before the cursor, and the spaces after it

  // Up / Down: older and newer entries; Down past the newest brings back what was being typed.
  void history_up();
  void history_down();

  // Enter: returns the text and clears the line; a non-empty line different from the last
  // entry goes into the history.
  std::string submit();

 private:
  std::size_t prev_boundary(std::size_t pos) const;
  std::size_t next_boundary(std::size_t pos) const;

  std::string text_;
  std::size_t cursor_ = 0;
  std::vector<std::string> history_;
  std::size_t history_pos_ = 0;  // == history_.size(): not browsing
  std::string draft_;            // the line being typed when browsing started
  std::size_t max_history_;
};

}  // namespace chat
