# Writes the chatserver.conf that the package ships: `chatserver --print-config` with every
# option commented out at its default, so the file documents itself and cannot drift from the
# code. Only the transcript and the database are set, for the service (its LogsDirectory and
# StateDirectory).
#
#   cmake -DCHATSERVER=path/to/chatserver -DOUT=chatserver.conf -P make_conf.cmake
execute_process(COMMAND "${CHATSERVER}" --print-config
                OUTPUT_VARIABLE printed RESULT_VARIABLE code)
if(NOT code EQUAL 0)
  message(FATAL_ERROR "${CHATSERVER} --print-config failed (${code})")
endif()
string(REGEX REPLACE "\n([a-z][a-z-]*)=" "\n# \\1 = " body "${printed}")
# The first two comment lines are the program's description; the file's own header replaces them.
string(REGEX REPLACE "^#[^\n]*\n#[^\n]*\n" "" body "${body}")
string(REPLACE "\n# log-file = \"\"\n"
       "\n# (the service: its transcript, rotated weekly by /etc/logrotate.d/chatserver)\nlog-file = \"/var/log/chat/chat.log\"\n"
       body "${body}")
if(NOT body MATCHES "\nlog-file = ")
  message(FATAL_ERROR "make_conf.cmake: no log-file line in --print-config's output")
endif()
string(REPLACE "\n# db = \"\"\n"
       "\n# (the service: the room's history and seats, in its StateDirectory)\ndb = \"/var/lib/chat/chat.db\"\n"
       body "${body}")
if(NOT body MATCHES "\ndb = ")
  message(FATAL_ERROR "make_conf.cmake: no db line in --print-config's output")
endif()
file(WRITE "${OUT}" "# /etc/chat/chatserver.conf: chatserver's settings, read by the chatserver service
# (chatserver --config FILE). One \"name = value\" per line; every option is here, commented
# out at its default. Options on the command line win over this file.
#
# After a change: systemctl restart chatserver. Check a file first with
#   chatserver --config /etc/chat/chatserver.conf --print-config
# (a bad name or value is an error naming the line). Durations: 100ms, 1.5s, 2m.
# Sizes: 65536, 64KiB, 1MiB. More: man chatserver, /usr/share/doc/chat/README.md.
${body}")
