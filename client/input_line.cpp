#include "client/input_line.hpp"

namespace chat {
namespace {
bool continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }
}  // namespace

std::size_t InputLine::prev_boundary(std::size_t pos) const {
  if (pos == 0) return 0;
  --pos;
  while (pos > 0 && continuation(text_[pos])) --pos;
  return pos;
}

std::size_t InputLine::next_boundary(std::size_t pos) const {
  if (pos >= text_.size()) return text_.size();
  ++pos;
  while (pos < text_.size() && continuation(text_[pos])) ++pos;
  return pos;
}

void InputLine::insert(std::string_view utf8) {
  text_.insert(cursor_, utf8);
  cursor_ += utf8.size();
}

void InputLine::backspace() {
  const std::size_t from = prev_boundary(cursor_);
  text_.erase(from, cursor_ - from);
  cursor_ = from;
}

void InputLine::erase() { text_.erase(cursor_, next_boundary(cursor_) - cursor_); }
void InputLine::left() { cursor_ = prev_boundary(cursor_); }
void InputLine::right() { cursor_ = next_boundary(cursor_); }
void InputLine::home() { cursor_ = 0; }
void InputLine::end() { cursor_ = text_.size(); }
void InputLine::kill_to_end() { text_.erase(cursor_); }

void InputLine::kill_to_start() {
  text_.erase(0, cursor_);
  cursor_ = 0;
}

void InputLine::kill_word() {
  std::size_t from = cursor_;
  while (from > 0 && text_[from - 1] == ' ') --from;
  while (from > 0 && text_[from - 1] != ' ') --from;
  text_.erase(from, cursor_ - from);
  cursor_ = from;
}

void InputLine::history_up() {
  if (history_pos_ == 0) return;
  if (history_pos_ == history_.size()) draft_ = text_;
  --history_pos_;
  text_ = history_[history_pos_];
  cursor_ = text_.size();
}

void InputLine::history_down() {
  if (history_pos_ >= history_.size()) return;
  ++history_pos_;
  text_ = history_pos_ == history_.size() ? draft_ : history_[history_pos_];
  cursor_ = text_.size();
}

std::string InputLine::submit() {
  std::string line = std::move(text_);
  text_.clear();
  cursor_ = 0;
  draft_.clear();
  if (!line.empty() && (history_.empty() || history_.back() != line)) {
    history_.push_back(line);
    if (history_.size() > max_history_) history_.erase(history_.begin());
  }
  history_pos_ = history_.size();
  return line;
}

}  // namespace chat
