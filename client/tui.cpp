#include "client/tui.hpp"

#include "client/commands.hpp"
#include "client/screen_model.hpp"
#include "common/log.hpp"
#include "common/text.hpp"

#include <curses.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <climits>
#include <cwchar>
#include <iostream>
#include <system_error>
#include <vector>

namespace chat {
namespace {

using Clock = std::chrono::steady_clock;

// ---- text measuring (the locale is UTF-8; everything drawn has been sanitised) -------------

struct Glyph {
  std::size_t offset;  // byte offset in the string
  std::size_t len;     // bytes
  int width;           // terminal columns
};

std::vector<Glyph> glyphs(std::string_view s) {
  std::vector<Glyph> out;
  std::mbstate_t state{};
  std::size_t i = 0;
  while (i < s.size()) {
    wchar_t wc = 0;
    std::size_t n = std::mbrtowc(&wc, s.data() + i, s.size() - i, &state);
    int width = 1;
    if (n == static_cast<std::size_t>(-1) || n == static_cast<std::size_t>(-2) || n == 0) {
      n = 1;  // not in this locale's encoding: ncurses shows it as one escaped cell at least
      state = {};
    } else {
      width = ::wcwidth(wc);
      if (width < 0) width = 1;
    }
    out.push_back(Glyph{i, n, width});
    i += n;
  }
  return out;
}

// Splits `s` into rows of at most `width` columns; rows after the first get `indent` columns
// less (they are drawn indented under the text, past the stamp). Returns byte ranges.
std::vector<std::pair<std::size_t, std::size_t>> wrap(std::string_view s, int width, int indent) {
  std::vector<std::pair<std::size_t, std::size_t>> rows;
  if (width <= 0) return rows;
  std::size_t start = 0;
  int used = 0;
  int limit = width;
  for (const auto& g : glyphs(s)) {
    if (used + g.width > limit && used > 0) {
      rows.emplace_back(start, g.offset - start);
      start = g.offset;
      used = 0;
      limit = std::max(1, width - indent);
    }
    used += g.width;
  }
  rows.emplace_back(start, s.size() - start);
  return rows;
}

// ---- colours -------------------------------------------------------------------------------

enum Pair : short { pair_green = 1, pair_red, pair_orange, pair_blue, pair_info, pair_date };

void init_colours() {
  if (!has_colors()) return;
  start_color();
  use_default_colors();  // -1: the terminal's own background
  const bool many = COLORS >= 256;
  init_pair(pair_green, COLOR_GREEN, -1);
  init_pair(pair_red, COLOR_RED, -1);
  init_pair(pair_orange, many ? 208 : COLOR_YELLOW, -1);  // 208: orange in the xterm palette
  init_pair(pair_blue, many ? 33 : COLOR_BLUE, -1);       // 33: a blue readable on black
  init_pair(pair_info, COLOR_CYAN, -1);
  init_pair(pair_date, COLOR_YELLOW, -1);
}

attr_t attr_of(Category c) {
  if (!has_colors()) {
    switch (c) {
      case Category::error: return A_BOLD;
      case Category::priv_in:
      case Category::priv_out: return A_UNDERLINE;
      case Category::separator: return A_BOLD;
      default: return A_NORMAL;
    }
  }
  switch (c) {
    case Category::join:
    case Category::leave: return COLOR_PAIR(pair_green);
    case Category::error: return COLOR_PAIR(pair_red) | A_BOLD;
    case Category::priv_in: return COLOR_PAIR(pair_orange);
    case Category::priv_out: return COLOR_PAIR(pair_blue);
    case Category::info: return COLOR_PAIR(pair_info);
    case Category::date: return COLOR_PAIR(pair_date) | A_BOLD;
    case Category::separator: return COLOR_PAIR(pair_info) | A_BOLD;
    case Category::own: return A_BOLD;
    case Category::message: return A_NORMAL;
  }
  return A_NORMAL;
}

// ---- the screen ----------------------------------------------------------------------------

// RAII for ncurses' terminal state: whatever way run_interactive() leaves, the terminal is
// given back in line mode.
struct Curses {
  Curses() {
    initscr();
    raw();  // Ctrl-C, Ctrl-Z, Ctrl-S arrive as keys: the client decides what they do
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    set_escdelay(25);
    init_colours();
  }
  ~Curses() { endwin(); }
  Curses(const Curses&) = delete;
  Curses& operator=(const Curses&) = delete;
};

class Tui {
 public:
  Tui(LinkOptions options, bool verbose)
      : model_(options.host + ":" + std::to_string(options.port), options.nick), link_(std::move(options)) {
    model_.show_details(verbose);
  }

  int run(int signal_fd);
  // The lines of a refused TLS certificate, if one was: said again on the terminal once the
  // full screen is gone, so that the warning stays in the scrollback, as ssh's does.
  const std::vector<std::string>& refusal() const { return refusal_; }

 private:
  void draw();
  void draw_messages(int rows, int cols);
  void draw_users(int rows, int col, int cols);
  void draw_input(int row, int cols);
  void handle_key(int kind, wint_t key);
  void submit();
  void apply_events();
  void start_quit(std::string reason);
  int pane_rows() const { return std::max(1, LINES - 2); }

  ScreenModel model_;
  Link link_;
  // Whether the last draw showed the first line held: Page Up there asks the server for the
  // messages before it (scroll-back).
  bool top_visible_ = true;
  bool link_ended_ = false;
  bool ended_by_loss_ = false;
  bool quitting_ = false;
  Clock::time_point quit_deadline_{};
  std::vector<std::string> refusal_;
};

void Tui::start_quit(std::string reason) {
  if (quitting_) return;
  quitting_ = true;
  quit_deadline_ = Clock::now() + std::chrono::seconds(3);
  link_.quit(std::move(reason));
}

void Tui::apply_events() {
  for (auto& ev : link_.take_events()) {
    if (ev.kind == LinkEvent::Kind::certificate && ev.error) refusal_ = ev.lines;
    if (ev.kind == LinkEvent::Kind::ended) {
      link_ended_ = true;
      ended_by_loss_ = ev.error;
    }
    model_.apply(ev, Moment::now());
  }
}

int Tui::run(int signal_fd) {
  link_.start();
  while (true) {
    draw();
    if (quitting_ && (link_ended_ || Clock::now() >= quit_deadline_)) break;

    const auto now = Clock::now();
    auto wake = now + std::chrono::seconds(5);
    if (const auto change = model_.next_status_change(now)) wake = std::min(wake, *change);
    if (quitting_) wake = std::min(wake, quit_deadline_);
    const auto timeout = std::chrono::ceil<std::chrono::milliseconds>(wake - now).count();

    std::array<pollfd, 3> fds{{{STDIN_FILENO, POLLIN, 0}, {link_.event_fd(), POLLIN, 0}, {signal_fd, POLLIN, 0}}};
    const int r = ::poll(fds.data(), fds.size(), static_cast<int>(std::max<long long>(timeout, 0)));
    if (r < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "poll");
    // EINTR is SIGWINCH: ncurses' handler noted it and the next wget_wch returns KEY_RESIZE.

    if (r > 0 && fds[2].revents != 0) {
      signalfd_siginfo info{};
      if (::read(signal_fd, &info, sizeof info) > 0) start_quit("");
    }
    apply_events();
    if (r > 0 && (fds[0].revents & (POLLHUP | POLLERR)) != 0 && (fds[0].revents & POLLIN) == 0) {
      start_quit("");  // the terminal went away
    }
    while (true) {
      wint_t key = 0;
      const int kind = wget_wch(stdscr, &key);
      if (kind == ERR) break;
      handle_key(kind, key);
    }
    // A session that ended because the server was gone (--no-reconnect) stays on screen:
    // the user may still read and /save it before leaving.
    if (quitting_ && link_ended_) break;
  }
  return ended_by_loss_ ? 1 : 0;
}

void Tui::handle_key(int kind, wint_t key) {
  auto& in = model_.input();
  if (kind == KEY_CODE_YES) {
    switch (key) {
      case KEY_ENTER: submit(); return;
      case KEY_BACKSPACE: in.backspace(); return;
      case KEY_DC: in.erase(); return;
      case KEY_LEFT: in.left(); return;
      case KEY_RIGHT: in.right(); return;
      case KEY_HOME: in.home(); return;
      case KEY_END: in.end(); return;
      case KEY_UP: in.history_up(); return;
      case KEY_DOWN: in.history_down(); return;
      case KEY_PPAGE:
        // At the top of what is held: ask for earlier messages (quietly; the status line says
        // "loading earlier messages" until they are inserted above).
        if (top_visible_ && !link_ended_) {
          if (auto ask = model_.request_earlier(history_page, Moment::now(), /*explain=*/false)) link_.send(*ask);
        }
        model_.scroll_up(static_cast<std::size_t>(std::max(1, pane_rows() - 1)));
        return;
      case KEY_NPAGE: model_.scroll_down(static_cast<std::size_t>(std::max(1, pane_rows() - 1))); return;
      case KEY_RESIZE: clearok(curscr, TRUE); return;  // ncurses has the new LINES / COLS
      default: return;
    }
  }
  switch (key) {
    case L'\r':
    case L'\n': submit(); return;
    case 127:
    case 8: in.backspace(); return;
    case 1: in.home(); return;         // Ctrl-A
    case 5: in.end(); return;          // Ctrl-E
    case 2: in.left(); return;         // Ctrl-B
    case 6: in.right(); return;        // Ctrl-F
    case 11: in.kill_to_end(); return;    // Ctrl-K
    case 21: in.kill_to_start(); return;  // Ctrl-U
    case 23: in.kill_word(); return;      // Ctrl-W
    case 12: clearok(curscr, TRUE); return;  // Ctrl-L
    case 3: start_quit(""); return;          // Ctrl-C
    case 4:                                  // Ctrl-D on an empty line
      if (in.text().empty()) start_quit("");
      return;
    case L'\t': in.insert(" "); return;
    default: break;
  }
  if (key < 0x20 || (key >= 0x7f && key < 0xa0)) return;  // other control keys: ignored
  char buf[MB_LEN_MAX];
  std::mbstate_t state{};
  const std::size_t n = std::wcrtomb(buf, static_cast<wchar_t>(key), &state);
  if (n != static_cast<std::size_t>(-1)) in.insert(std::string_view(buf, n));
}

void Tui::submit() {
  static const std::vector<std::string> keys{
      "***   /more [n]            n earlier messages (50) at the top of the pane",
      "***   Page Up / Page Down scroll (Page Up at the top: earlier messages), Up / Down recall what you typed"};
  const Submitted done = submit_line(model_, model_.input().submit(), link_ended_, keys);
  switch (done.kind) {
    case Submitted::Kind::nothing:
    case Submitted::Kind::cleared: return;  // the next draw() shows the model as it is
    case Submitted::Kind::send: link_.send(done.command); return;
    case Submitted::Kind::quit:
      if (link_ended_) {
        quitting_ = true;
        return;
      }
      start_quit(done.reason);
      return;
  }
}

void Tui::draw() {
  erase();
  const int rows = pane_rows();
  const int users_cols = COLS >= 50 ? 20 : 0;
  const int msg_cols = users_cols > 0 ? COLS - users_cols - 1 : COLS;
  draw_messages(rows, msg_cols);
  if (users_cols > 0) {
    mvvline(0, msg_cols, ACS_VLINE, rows);
    draw_users(rows, msg_cols + 1, users_cols);
  }
  // Status line: reverse video across the whole width.
  const std::string status = " " + model_.status(Clock::now());
  attron(A_REVERSE);
  mvhline(LINES - 2, 0, ' ', COLS);
  const auto rows_of = wrap(status, COLS, 0);
  if (!rows_of.empty()) mvaddnstr(LINES - 2, 0, status.data(), static_cast<int>(rows_of[0].second));
  attroff(A_REVERSE);
  draw_input(LINES - 1, COLS);
  refresh();
}

void Tui::draw_messages(int rows, int cols) {
  const auto& lines = model_.lines();
  const int indent = 11;  // under the text, past "[14:02:09] "
  // Bottom-up: the newest visible line is `scroll` lines above the last one.
  int row = rows;
  std::size_t end = lines.size() - std::min(model_.scroll_offset(), lines.size());
  top_visible_ = lines.empty();
  while (end > 0 && row > 0) {
    const ScreenLine& line = lines[--end];
    const std::string text = line.rendered();
    const int line_indent = line.stamp.empty() ? 0 : indent;
    const auto pieces = wrap(text, cols, line_indent);
    // History (said before now) is dimmed: apart from what happens now.
    const attr_t attr = attr_of(line.category) | (line.history ? A_DIM : A_NORMAL);
    if (end == 0 && row - static_cast<int>(pieces.size()) >= 0) top_visible_ = true;
    for (std::size_t i = pieces.size(); i-- > 0 && row > 0;) {
      --row;
      const int x = i == 0 ? 0 : std::min(line_indent, cols - 1);
      attron(attr);
      mvaddnstr(row, x, text.data() + pieces[i].first, static_cast<int>(pieces[i].second));
      attroff(attr);
    }
  }
}

void Tui::draw_users(int rows, int col, int cols) {
  const auto users = model_.users();
  const std::string title = model_.state() == LinkState::joined
                                ? " online (" + std::to_string(users.size()) + ")"
                                : " (not in the room)";
  attron(A_BOLD | A_UNDERLINE);
  mvaddnstr(0, col, title.c_str(), cols);
  attroff(A_BOLD | A_UNDERLINE);
  int row = 1;
  for (std::size_t i = 0; i < users.size() && row < rows; ++i, ++row) {
    if (row == rows - 1 && i + 1 < users.size()) {
      const std::string more = " ... " + std::to_string(users.size() - i) + " more";
      mvaddnstr(row, col, more.c_str(), cols);
      break;
    }
    const bool me = fold_nick(users[i]) == fold_nick(model_.nick());
    const std::string entry = " " + users[i];
    if (me) attron(A_BOLD);
    mvaddnstr(row, col, entry.c_str(), cols);
    if (me) attroff(A_BOLD);
  }
}

void Tui::draw_input(int row, int cols) {
  const std::string prompt = "> ";
  const int avail = std::max(1, cols - static_cast<int>(prompt.size()) - 1);
  const auto& in = model_.input();
  const auto gs = glyphs(in.text());
  // The glyph under the cursor, then the first glyph shown so that it stays visible.
  std::size_t cursor_glyph = gs.size();
  for (std::size_t i = 0; i < gs.size(); ++i) {
    if (gs[i].offset >= in.cursor()) {
      cursor_glyph = i;
      break;
    }
  }
  std::size_t first = cursor_glyph;
  int width = 0;
  while (first > 0 && width + gs[first - 1].width <= avail) width += gs[--first].width;
  std::size_t last = cursor_glyph;
  int used = width;
  while (last < gs.size() && used + gs[last].width <= avail) used += gs[last++].width;
  mvaddstr(row, 0, prompt.c_str());
  if (first < gs.size() && last > first) {
    const std::size_t from = gs[first].offset;
    const std::size_t to = last < gs.size() ? gs[last].offset : in.text().size();
    addnstr(in.text().data() + from, static_cast<int>(to - from));
  }
  move(row, static_cast<int>(prompt.size()) + width);
}

}  // namespace

std::optional<std::string> ask_nick(std::istream& in, std::ostream& out) {
  while (true) {
    out << "nickname (1-24 of A-Z a-z 0-9 _ ! -): " << std::flush;
    std::string nick;
    if (!std::getline(in, nick)) return std::nullopt;
    while (!nick.empty() && (nick.back() == ' ' || nick.back() == '\r')) nick.pop_back();
    while (!nick.empty() && nick.front() == ' ') nick.erase(0, 1);
    if (auto problem = nick_problem(nick)) {
      out << "'" << nick << "': " << *problem << "\n";
      continue;
    }
    return nick;
  }
}

int run_interactive(LinkOptions options, bool verbose) {
  // Blocked before the Link's thread exists, so it inherits the mask; they arrive here through
  // the signalfd instead of killing us with the terminal in raw mode.
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&mask, sig);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  const int signal_fd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd < 0) throw std::system_error(errno, std::generic_category(), "signalfd");

  int code = 0;
  std::vector<std::string> refusal;
  {
    Curses curses;
    Tui tui(std::move(options), verbose);
    code = tui.run(signal_fd);
    refusal = tui.refusal();
  }  // the Link's thread is joined, then the terminal restored
  ::close(signal_fd);
  for (const auto& line : refusal) std::cerr << line << '\n';
  std::cerr << std::flush;
  return code;
}

}  // namespace chat
