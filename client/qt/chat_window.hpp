// ChatWindow: chatclient-qt's main window. A view over the same ScreenModel the full-screen
// terminal client draws (client/screen_model.hpp) and the same Link (client/link.hpp): the
// message pane, the user list with a count, the input line with history, and a status bar.
//
// Threads, the pair every PoshChat reader knows (docs/threads.md, "A window on top"):
//   - the GUI thread (Qt's event loop, the process's main thread) owns every widget, the
//     ScreenModel and the Link object. It never touches a socket and never waits on one.
//   - the Link's network thread does all network work. When it has queued events it calls
//     LinkOptions::on_event, which posts a queued call of drain() to this window
//     (QMetaObject::invokeMethod with Qt::QueuedConnection): Qt runs it on the GUI thread, as
//     WPF's Dispatcher.Invoke ran PoshChat's updates on the window's thread. drain() takes the
//     events (Link::take_events) and applies them to the model.
//   - typed lines reach the network thread through Link::send(), the Link's own queue.
//
// History (client/screen_model.hpp): lines from the server's history are grey, between cyan
// separators; after a resume the marker "--- away 41 s, 12 messages you missed ---" opens what
// was missed. Scrolling to the top (wheel, scroll bar, Page Up) or "Load earlier messages"
// asks the server for the messages before the oldest one shown and puts them above.
// drain_posted_ is the only member both threads touch (an atomic flag, so a burst of events
// posts one call, not thousands).
//
// Nothing from the network is interpreted: the Link has already sanitised every string
// (client/sanitize.hpp), and here text only goes into widgets as plain text (QTextCursor::
// insertText, QListWidgetItem, a QLabel in Qt::PlainText).
#pragma once

#include "client/link.hpp"
#include "client/screen_model.hpp"

#include <QColor>
#include <QMainWindow>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

class QLabel;
class QLineEdit;
class QListWidget;
class QPlainTextEdit;
class QPushButton;
class QTimer;

namespace chat::qt {

class ChatWindow : public QMainWindow {
  Q_OBJECT

 public:
  // Starts the Link at once (it connects and joins as options.nick). `verbose`: the protocol's
  // detail after each leave, goodbye and refusal (ScreenModel::show_details).
  explicit ChatWindow(LinkOptions options, bool verbose = false, QWidget* parent = nullptr);
  ~ChatWindow() override;  // stops and joins the Link's network thread first

  // For tests and the screenshot: the widgets and the model as the user sees them.
  QPlainTextEdit* messages() const { return messages_; }
  QListWidget* users() const { return users_; }
  QLineEdit* input() const { return input_; }
  QString status_text() const;
  const ScreenModel& model() const { return model_; }
  // The server's detail of the line at `point` (viewport coordinates of messages()), which the
  // tooltip shows; empty for a line without one.
  QString detail_at(const QPoint& point) const;
  // True once the Link has ended (after /quit, or the server lost without reconnecting).
  bool link_ended() const { return link_ended_; }

  // The longest line the pane shows whole; the rest of a longer one is cut (/save keeps all).
  static constexpr int max_shown_chars = 8192;
  // The colour of history lines (said before now), whatever their category.
  static QColor history_colour() { return QColor(0x8a, 0x8a, 0x8a); }

 protected:
  void closeEvent(QCloseEvent* event) override;
  bool eventFilter(QObject* watched, QEvent* event) override;

 private slots:
  void drain();  // GUI thread: take the Link's events and show them

 private:
  void submit();
  void start_quit(const std::string& reason);
  void refresh();          // the pane's new lines, the user list, the status bar
  void append_new_lines();
  void prepend_new_lines();  // scroll-back answers, above everything
  void request_earlier(bool explain);  // HISTORY BEFORE, when the model says there is a point
  void clear_pane();
  void recall(bool older);  // Up / Down: the input line's history (the model's InputLine)
  InputLine& synced_input();  // the model's InputLine, holding what the QLineEdit holds

  ScreenModel model_;
  QPlainTextEdit* messages_ = nullptr;
  QListWidget* users_ = nullptr;
  QLabel* users_count_ = nullptr;
  QLineEdit* input_ = nullptr;
  QLabel* status_ = nullptr;
  QPushButton* load_earlier_ = nullptr;  // "Load earlier messages", above the pane
  QTimer* status_timer_ = nullptr;  // the reconnect countdown
  QTimer* quit_timer_ = nullptr;    // a bounded wait for the goodbye after /quit

  std::uint64_t shown_ = 0;          // model_.lines_added() already in the pane
  std::uint64_t shown_above_ = 0;    // model_.lines_above() already in the pane
  std::vector<std::string> listed_;  // the names in users_
  bool link_ended_ = false;
  bool quitting_ = false;
  std::atomic<bool> drain_posted_{false};  // set by the network thread, cleared by drain()
  std::unique_ptr<Link> link_;             // last: destroyed (joined) before the rest
};

}  // namespace chat::qt
