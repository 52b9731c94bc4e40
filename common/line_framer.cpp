#include "common/line_framer.hpp"

namespace chat {

bool LineFramer::take_partial(std::string& out) {
  std::string_view line = buffer_;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const bool had = !discarding_ && !line.empty() && line.size() <= max_line_;
  if (had) out.assign(line);
  buffer_.clear();
  discarding_ = false;
  return had;
}

}  // namespace chat
