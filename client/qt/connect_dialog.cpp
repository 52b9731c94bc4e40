#include "client/qt/connect_dialog.hpp"

#include "common/text.hpp"

#include <QCheckBox>
#include <QDialogButtonBox>
#include <QFormLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>
#include <QVBoxLayout>

namespace chat::qt {

ConnectDialog::ConnectDialog(const ConnectChoice& given, QWidget* parent) : QDialog(parent) {
  setWindowTitle("Connect to a chat server");
  QSettings settings;
  host_ = new QLineEdit(given.host.empty() ? settings.value("host", "127.0.0.1").toString()
                                           : QString::fromStdString(given.host));
  port_ = new QSpinBox;
  port_->setRange(1, 65535);
  port_->setValue(given.port != 0 ? given.port : settings.value("port", 15600).toInt());
  nick_ = new QLineEdit(given.nick.empty() ? settings.value("nick").toString() : QString::fromStdString(given.nick));
  nick_->setMaxLength(static_cast<int>(max_nick_length));
  password_ = new QLineEdit(QString::fromStdString(given.password));
  password_->setEchoMode(QLineEdit::Password);
  password_->setPlaceholderText("only if the room has one");
  password_->setObjectName("password");
  host_->setObjectName("host");
  port_->setObjectName("port");
  nick_->setObjectName("nick");
  tls_ = new QCheckBox("over &TLS (encrypted)");
  tls_->setObjectName("tls");
  tls_->setChecked(given.tls || settings.value("tls", false).toBool());
  tls_pin_ = new QCheckBox("trust its certificate on &first use (pin it, as ssh does)");
  tls_pin_->setObjectName("tls_pin");
  tls_pin_->setToolTip("For a server whose certificate no authority signed (chatserver --self-signed): it is "
                       "trusted the first time and pinned; another certificate from it is refused later");
  tls_pin_->setChecked(given.tls_pin);
  connect(tls_, &QCheckBox::toggled, tls_pin_, &QCheckBox::setEnabled);
  tls_pin_->setEnabled(tls_->isChecked());
  problem_ = new QLabel;
  problem_->setTextFormat(Qt::PlainText);
  problem_->setStyleSheet("color: #d32f2f");

  auto* form = new QFormLayout;
  form->addRow("&Server:", host_);
  form->addRow("&Port:", port_);
  form->addRow("&Nickname:", nick_);
  form->addRow("Room pass&word:", password_);
  form->addRow("", tls_);
  form->addRow("", tls_pin_);
  buttons_ = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel);
  buttons_->button(QDialogButtonBox::Ok)->setText("&Connect");
  connect(buttons_, &QDialogButtonBox::accepted, this, &ConnectDialog::accept);
  connect(buttons_, &QDialogButtonBox::rejected, this, &ConnectDialog::reject);  // Esc too (QDialog)
  connect(nick_, &QLineEdit::textChanged, this, &ConnectDialog::check);
  connect(host_, &QLineEdit::textChanged, this, &ConnectDialog::check);

  auto* layout = new QVBoxLayout(this);
  layout->addLayout(form);
  layout->addWidget(problem_);
  layout->addWidget(buttons_);
  check();
  (nick_->text().isEmpty() ? nick_ : host_)->setFocus();
}

ConnectChoice ConnectDialog::choice() const {
  return {host_->text().trimmed().toStdString(), static_cast<std::uint16_t>(port_->value()),
          nick_->text().toStdString(), password_->text().toStdString(), tls_->isChecked(),
          tls_->isChecked() && tls_pin_->isChecked()};
}

void ConnectDialog::check() {
  const auto c = choice();
  std::string problem;
  if (c.host.empty()) {
    problem = "the server's address is missing";
  } else if (c.nick.empty()) {
    problem = "choose a nickname";
  } else if (auto why = nick_problem(c.nick)) {
    problem = "nickname: " + *why;
  }
  problem_->setText(QString::fromStdString(problem));
  buttons_->button(QDialogButtonBox::Ok)->setEnabled(problem.empty());
}

void ConnectDialog::accept() {
  check();
  if (!buttons_->button(QDialogButtonBox::Ok)->isEnabled()) return;
  const auto c = choice();
  QSettings settings;
  settings.setValue("host", QString::fromStdString(c.host));
  settings.setValue("port", c.port);
  settings.setValue("nick", QString::fromStdString(c.nick));
  settings.setValue("tls", c.tls);
  QDialog::accept();
}

}  // namespace chat::qt
