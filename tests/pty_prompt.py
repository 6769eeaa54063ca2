"""Answer a program's no-echo PIN prompts on a pseudo-terminal, like a person would.

usage: pty_prompt.py ANSWERS_FILE -- PROGRAM [ARGS...]
ANSWERS_FILE holds one answer per line. For each, the script waits for a prompt ending in
": " and for the terminal's echo to be switched off (so nothing typed can show), then types
the answer. It prints everything the program wrote to the terminal, and exits with the
program's exit status. Used by the tests: the PINs never appear in argv.
"""
import os
import pty
import select
import sys
import termios
import time

answers = open(sys.argv[1]).read().splitlines()
argv = sys.argv[sys.argv.index("--") + 1:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)

output = b""
deadline = time.monotonic() + 30


def read_some(timeout):
    global output
    ready, _, _ = select.select([fd], [], [], timeout)
    if ready:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return False
        if not chunk:
            return False
        output += chunk
    return True


for answer in answers:
    seen = len(output)
    while not output[seen:].rstrip(b"\r\n").endswith(b": "):
        if time.monotonic() > deadline or not read_some(0.1):
            sys.stdout.write(output.decode(errors="replace"))
            sys.exit("pty_prompt: no prompt came")
    # Wait until the program has switched echo off before typing.
    while termios.tcgetattr(fd)[3] & termios.ECHO:
        if time.monotonic() > deadline:
            sys.exit("pty_prompt: echo stayed on")
        read_some(0.01)
    os.write(fd, answer.encode() + b"\n")

while read_some(1):
    pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(output.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
