package guestconsole

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// ServeSerial plays a guest's serial line on conn: a banner, a login
// prompt, and the echo a terminal in cooked mode gives (each character as
// typed, a new line for Enter, backspace rubbing out). After a login name
// and any password it gives a shell prompt that answers each line with the
// line. It returns when the other end leaves.
func ServeSerial(conn io.ReadWriteCloser, hostname string) error {
	defer conn.Close()
	w := bufio.NewWriter(conn)
	say := func(format string, args ...any) error {
		fmt.Fprintf(w, format, args...)
		return w.Flush()
	}
	if err := say("\r\n%s login: ", hostname); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	var line []rune
	user, state := "", "login"
	for {
		ch, _, err := r.ReadRune()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch ch {
		case '\r', '\n':
			entered := string(line)
			line = line[:0]
			var err error
			switch state {
			case "login":
				user, state = strings.TrimSpace(entered), "password"
				err = say("\r\nPassword: ")
			case "password":
				state = "shell"
				err = say("\r\nWelcome to %s, %s.\r\n%s@%s:~$ ", hostname, user, user, hostname)
			default:
				if entered != "" {
					err = say("\r\n%s", entered)
				}
				if err == nil {
					err = say("\r\n%s@%s:~$ ", user, hostname)
				}
			}
			if err != nil {
				return err
			}
		case 0x7f, '\b':
			if len(line) > 0 {
				line = line[:len(line)-1]
				if state != "password" {
					if err := say("\b \b"); err != nil {
						return err
					}
				}
			}
		default:
			if ch < ' ' {
				continue
			}
			line = append(line, ch)
			if state != "password" {
				if err := say("%c", ch); err != nil {
					return err
				}
			}
		}
	}
}
