#include "client/qt/chat_window.hpp"

#include "client/commands.hpp"

#include <QCloseEvent>
#include <QHBoxLayout>
#include <QHelpEvent>
#include <QKeyEvent>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QScrollBar>
#include <QShortcut>
#include <QSplitter>
#include <QStatusBar>
#include <QTextBlock>
#include <QTextCursor>
#include <QTimer>
#include <QToolTip>
#include <QVBoxLayout>
#include <QWheelEvent>

#include <algorithm>
#include <chrono>

namespace chat::qt {
namespace {

// The full-screen client's colours (client/tui.cpp), in shades that read on a light window as
// well as a dark one: joins and leaves green, errors and lost connections red and bold,
// private messages received orange and sent blue, notices cyan, dates yellow; the separators
// around history bold cyan, and history itself grey (said before now: apart from what happens
// now, as the terminal dims it).
QTextCharFormat format_of(const ScreenLine& line) {
  QTextCharFormat f;
  switch (line.category) {
    case Category::join:
    case Category::leave: f.setForeground(QColor(0x2e, 0x9d, 0x3a)); break;
    case Category::error:
      f.setForeground(QColor(0xd3, 0x2f, 0x2f));
      f.setFontWeight(QFont::Bold);
      break;
    case Category::priv_in: f.setForeground(QColor(0xff, 0x87, 0x00)); break;   // xterm 208, as on a terminal
    case Category::priv_out: f.setForeground(QColor(0x00, 0x87, 0xff)); break;  // xterm 33
    case Category::info: f.setForeground(QColor(0x00, 0x97, 0xa7)); break;
    case Category::date:
      f.setForeground(QColor(0xb8, 0x8a, 0x00));
      f.setFontWeight(QFont::Bold);
      break;
    case Category::separator:
      f.setForeground(QColor(0x00, 0x97, 0xa7));
      f.setFontWeight(QFont::Bold);
      break;
    case Category::own: f.setFontWeight(QFont::Bold); break;
    case Category::message: break;
  }
  if (line.history) f.setForeground(ChatWindow::history_colour());
  return f;
}

QString q(const std::string& s) { return QString::fromStdString(s); }

// The text a pane line shows: cut at ChatWindow::max_shown_chars (/save keeps all of it).
QString shown_text(const ScreenLine& line) {
  QString text = q(line.rendered());
  if (text.size() > ChatWindow::max_shown_chars) {
    auto keep = ChatWindow::max_shown_chars;
    if (text.at(keep - 1).isHighSurrogate()) --keep;  // never half a character
    const auto cut = text.size() - keep;
    text.truncate(keep);
    text += QString(" ... (%1 more characters; /save keeps them)").arg(cut);
  }
  return text;
}

// The server's detail rides on the block, for the tooltip (every block sets it: a new block
// inherits the format of the one before).
void set_detail(QTextCursor& cursor, const ScreenLine& line) {
  QTextBlockFormat block = cursor.blockFormat();
  block.setProperty(QTextFormat::UserProperty, q(line.detail));
  cursor.setBlockFormat(block);
}

}  // namespace

ChatWindow::ChatWindow(LinkOptions options, bool verbose, QWidget* parent)
    : QMainWindow(parent), model_(options.host + ":" + std::to_string(options.port), options.nick) {
  model_.show_details(verbose);
  setWindowTitle(q("chat: " + options.nick + " at " + options.host + ":" + std::to_string(options.port)));

  messages_ = new QPlainTextEdit;
  messages_->setObjectName("messages");
  messages_->setReadOnly(true);
  messages_->setFocusPolicy(Qt::ClickFocus);  // Tab stays between the input and the list
  messages_->setWordWrapMode(QTextOption::WrapAtWordBoundaryOrAnywhere);  // a 4 KiB word wraps too
  messages_->setMaximumBlockCount(10'000);  // as the model's pane: memory stays bounded
  messages_->setUndoRedoEnabled(false);

  users_ = new QListWidget;
  users_->setObjectName("users");
  users_count_ = new QLabel;
  users_count_->setObjectName("users_count");
  users_count_->setTextFormat(Qt::PlainText);
  auto* side = new QWidget;
  auto* side_layout = new QVBoxLayout(side);
  side_layout->setContentsMargins(0, 0, 0, 0);
  side_layout->addWidget(users_count_);
  side_layout->addWidget(users_);

  // Scroll-back: this button, the wheel or Page Up at the top of the pane ask the server for the
  // messages before the oldest one shown, which go in above.
  load_earlier_ = new QPushButton("Load earlier messages");
  load_earlier_->setObjectName("load_earlier");
  load_earlier_->setFlat(true);
  load_earlier_->setFocusPolicy(Qt::NoFocus);
  auto* pane = new QWidget;
  auto* pane_layout = new QVBoxLayout(pane);
  pane_layout->setContentsMargins(0, 0, 0, 0);
  pane_layout->setSpacing(0);
  pane_layout->addWidget(load_earlier_);
  pane_layout->addWidget(messages_, 1);

  auto* split = new QSplitter;
  split->addWidget(pane);
  split->addWidget(side);
  split->setStretchFactor(0, 4);
  split->setStretchFactor(1, 1);

  input_ = new QLineEdit;
  input_->setObjectName("input");
  input_->setPlaceholderText("Type a message, or /help");
  input_->installEventFilter(this);
  messages_->viewport()->installEventFilter(this);  // tooltips: the server's detail of a line

  auto* central = new QWidget;
  auto* layout = new QVBoxLayout(central);
  layout->addWidget(split, 1);
  layout->addWidget(input_);
  setCentralWidget(central);

  status_ = new QLabel;
  status_->setObjectName("status");
  status_->setTextFormat(Qt::PlainText);
  statusBar()->addWidget(status_, 1);

  status_timer_ = new QTimer(this);
  status_timer_->setSingleShot(true);
  connect(status_timer_, &QTimer::timeout, this, &ChatWindow::refresh);
  quit_timer_ = new QTimer(this);
  quit_timer_->setSingleShot(true);
  connect(quit_timer_, &QTimer::timeout, this, [this] {
    link_ended_ = true;  // the goodbye took too long: leave anyway
    close();
  });

  connect(input_, &QLineEdit::returnPressed, this, &ChatWindow::submit);
  connect(load_earlier_, &QPushButton::clicked, this, [this] { request_earlier(/*explain=*/true); });
  // Dragging the scroll bar to the top asks too (programmatic moves never reach the minimum
  // while lines go in above: prepend_new_lines() keeps the view where it was).
  connect(messages_->verticalScrollBar(), &QScrollBar::actionTriggered, this, [this](int) {
    QScrollBar* bar = messages_->verticalScrollBar();
    if (bar->sliderPosition() <= bar->minimum()) request_earlier(/*explain=*/false);
  });
  // Double-click or Enter on a name: a private message to them, keeping what was typed.
  connect(users_, &QListWidget::itemActivated, this, [this](QListWidgetItem* item) {
    QString text = input_->text();
    if (text.startsWith('@') || text.startsWith('/')) text.clear();  // another recipient or command
    input_->setText("@" + item->text() + " " + text);
    input_->setFocus();
  });
  auto* clear = new QShortcut(QKeySequence(Qt::CTRL | Qt::Key_L), this);
  connect(clear, &QShortcut::activated, this, [this] {
    model_.clear();
    clear_pane();
  });

  resize(900, 560);
  input_->setFocus();

  // The network thread's only way in: a queued call, run by the GUI thread's event loop.
  options.on_event = [this] {
    if (!drain_posted_.exchange(true)) QMetaObject::invokeMethod(this, &ChatWindow::drain, Qt::QueuedConnection);
  };
  link_ = std::make_unique<Link>(std::move(options));
  users_count_->setText("Online (0)");
  refresh();
  link_->start();
}

ChatWindow::~ChatWindow() {
  link_.reset();  // joins the network thread while everything its callback names still exists
}

QString ChatWindow::status_text() const { return status_->text(); }

void ChatWindow::drain() {
  drain_posted_ = false;  // before taking: an event queued from now on posts a new call
  for (auto& ev : link_->take_events()) {
    if (ev.kind == LinkEvent::Kind::ended) link_ended_ = true;
    model_.apply(ev, Moment::now());
  }
  refresh();
  if (quitting_ && link_ended_) close();
}

void ChatWindow::refresh() {
  prepend_new_lines();
  append_new_lines();
  load_earlier_->setEnabled(model_.state() == LinkState::joined && !model_.earlier_pending() &&
                            !model_.at_history_start());
  load_earlier_->setText(model_.at_history_start() ? "No earlier messages"
                         : model_.earlier_pending() ? "Loading earlier messages..."
                                                    : "Load earlier messages");

  // Rebuilt only when it changed, so the selection and the scroll position stay put.
  if (auto names = model_.users(); names != listed_) {
    listed_ = std::move(names);
    const QString current = users_->currentItem() ? users_->currentItem()->text() : QString();
    users_->clear();
    for (const auto& name : listed_) users_->addItem(q(name));  // already sorted, ignoring case
    const auto again = users_->findItems(current, Qt::MatchExactly);
    if (!current.isEmpty() && !again.isEmpty()) users_->setCurrentItem(again.front());
    users_count_->setText(QString("Online (%1)").arg(listed_.size()));
  }

  const auto now = std::chrono::steady_clock::now();
  status_->setText(q(model_.status(now)));
  if (const auto next = model_.next_status_change(now)) {
    status_timer_->start(std::max<int>(1, static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(*next - now).count())));
  }
}

void ChatWindow::append_new_lines() {
  const auto& lines = model_.lines();
  const auto fresh = static_cast<std::size_t>(std::min<std::uint64_t>(model_.lines_added() - shown_, lines.size()));
  shown_ = model_.lines_added();
  if (fresh == 0) return;
  auto* bar = messages_->verticalScrollBar();
  const bool following = bar->value() == bar->maximum();
  QTextCursor cursor(messages_->document());
  cursor.movePosition(QTextCursor::End);
  cursor.beginEditBlock();
  for (auto it = lines.end() - static_cast<std::ptrdiff_t>(fresh); it != lines.end(); ++it) {
    if (!messages_->document()->isEmpty()) cursor.insertBlock();
    set_detail(cursor, *it);
    cursor.insertText(shown_text(*it), format_of(*it));  // plain text: never parsed as HTML
  }
  cursor.endEditBlock();
  if (following) bar->setValue(bar->maximum());  // a reader who scrolled back stays put
}

void ChatWindow::prepend_new_lines() {
  const auto& lines = model_.lines();
  const auto fresh = static_cast<std::size_t>(std::min<std::uint64_t>(model_.lines_above() - shown_above_, lines.size()));
  shown_above_ = model_.lines_above();
  if (fresh == 0) return;
  auto* bar = messages_->verticalScrollBar();
  const int before_max = bar->maximum();
  const int before_value = bar->value();
  auto* doc = messages_->document();
  const bool was_empty = doc->isEmpty();
  QTextCursor cursor(doc);
  cursor.beginEditBlock();
  // Newest first, each at the very top: an empty block is split off above the first one, and
  // the line goes into it.
  for (std::size_t i = fresh; i-- > 0;) {
    cursor.movePosition(QTextCursor::Start);
    if (!(was_empty && i == fresh - 1)) {
      cursor.insertBlock();
      cursor.movePosition(QTextCursor::Start);
    }
    set_detail(cursor, lines[i]);
    cursor.insertText(shown_text(lines[i]), format_of(lines[i]));
  }
  cursor.endEditBlock();
  // What the reader was looking at stays where it was: the new lines are above it.
  bar->setValue(before_value + (bar->maximum() - before_max));
}

void ChatWindow::request_earlier(bool explain) {
  if (link_ended_) return;
  if (auto ask = model_.request_earlier(history_page, Moment::now(), explain)) link_->send(*ask);
  refresh();
}

void ChatWindow::clear_pane() {
  messages_->clear();
  shown_ = model_.lines_added();
  shown_above_ = model_.lines_above();
}

void ChatWindow::submit() {
  const std::string text = synced_input().submit();
  input_->clear();
  static const std::vector<std::string> keys{
      "***   /more [n]            n earlier messages (50) at the top (also: scroll to the top, Load earlier messages)",
      "***   Up / Down recall what you typed, Ctrl+L clears, double-click a name to write to them"};
  const Submitted done = submit_line(model_, text, link_ended_, keys);
  switch (done.kind) {
    case Submitted::Kind::nothing: break;
    case Submitted::Kind::cleared: clear_pane(); break;
    case Submitted::Kind::send:
      link_->send(done.command);
      messages_->verticalScrollBar()->setValue(messages_->verticalScrollBar()->maximum());  // follow again
      break;
    case Submitted::Kind::quit:
      if (link_ended_) {
        quitting_ = true;
        close();
        return;
      }
      start_quit(done.reason);
      break;
  }
  refresh();
}

InputLine& ChatWindow::synced_input() {
  // The model's InputLine keeps the history; the QLineEdit does the editing. Replaced only when
  // they differ: replacing it would end a walk through the history.
  auto& line = model_.input();
  if (const std::string typed = input_->text().toStdString(); line.text() != typed) {
    line.home();
    line.kill_to_end();
    line.insert(typed);
  }
  return line;
}

void ChatWindow::recall(bool older) {
  auto& line = synced_input();
  older ? line.history_up() : line.history_down();
  input_->setText(q(line.text()));
}

QString ChatWindow::detail_at(const QPoint& point) const {
  return messages_->cursorForPosition(point).block().blockFormat().property(QTextFormat::UserProperty).toString();
}

bool ChatWindow::eventFilter(QObject* watched, QEvent* event) {
  if (watched == messages_->viewport() && event->type() == QEvent::ToolTip) {
    // A leave, a goodbye or a refusal: the pointer resting on it shows the server's detail.
    const auto* help = static_cast<QHelpEvent*>(event);
    const QString detail = detail_at(help->pos());
    if (detail.isEmpty()) {
      QToolTip::hideText();
    } else {
      // As plain text: a quit's reason is another user's words, and QToolTip takes anything that
      // looks like markup for rich text.
      QToolTip::showText(help->globalPos(), Qt::convertFromPlainText(detail), messages_->viewport());
    }
    return true;
  }
  if (watched == messages_->viewport() && event->type() == QEvent::Wheel) {
    // The wheel turned up with the pane already at its top: earlier messages, quietly.
    const auto* wheel = static_cast<QWheelEvent*>(event);
    QScrollBar* bar = messages_->verticalScrollBar();
    if (wheel->angleDelta().y() > 0 && bar->value() <= bar->minimum()) request_earlier(/*explain=*/false);
  }
  if (watched == input_ && event->type() == QEvent::KeyPress) {
    const auto* key = static_cast<QKeyEvent*>(event);
    switch (key->key()) {
      case Qt::Key_Up: recall(true); return true;
      case Qt::Key_Down: recall(false); return true;
      case Qt::Key_PageUp: {
        QScrollBar* bar = messages_->verticalScrollBar();
        if (bar->value() <= bar->minimum()) request_earlier(/*explain=*/false);  // at the top already
        bar->triggerAction(QAbstractSlider::SliderPageStepSub);
        return true;
      }
      case Qt::Key_PageDown: messages_->verticalScrollBar()->triggerAction(QAbstractSlider::SliderPageStepAdd); return true;
      default: break;
    }
  }
  return QMainWindow::eventFilter(watched, event);
}

void ChatWindow::start_quit(const std::string& reason) {
  if (quitting_) return;
  quitting_ = true;
  link_->quit(reason);
  quit_timer_->start(3000);  // QUIT, then at most the Link's goodbye wait and a little more
}

void ChatWindow::closeEvent(QCloseEvent* event) {
  if (link_ended_) {
    event->accept();
    return;
  }
  start_quit("");  // the window closes once the Link has said goodbye (drain() or the timer)
  event->ignore();
}

}  // namespace chat::qt
