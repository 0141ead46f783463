package guest

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

func TestParseListing(t *testing.T) {
	in := "l 777 7 driver\x00d 755 0 power\x00f 644 4096 uevent\x00c 620 0 tty\x00b 660 0 vda\x00p 600 0 fifo\x00s 755 0 sock\x00D 644 0 door\x00f 4755 10 su id\x00f 1777 0 a b\nc\x00"
	ents, err := parseListing([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		info, _ := e.Info()
		got = append(got, fmt.Sprintf("%s|%v|%d", e.Name(), info.Mode(), info.Size()))
	}
	want := []string{
		"a b\nc|trwxrwxrwx|0", "door|?rw-r--r--|0", "driver|Lrwxrwxrwx|7", "fifo|prw-------|0", "power|drwxr-xr-x|0",
		"sock|Srwxr-xr-x|0", "su id|urwxr-xr-x|10", "tty|Dcrw--w----|0", "uevent|-rw-r--r--|4096", "vda|Drw-rw----|0",
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got  %q\nwant %q", got, want)
	}

	for _, bad := range []string{"f 644 1 x", "f 644 1 \x00", "x\x00", "ff 644 1 x\x00", "f 999 1 x\x00", "f 644 -1 x\x00", "f 644 1 a/b\x00", "f 644 x\x00"} {
		t.Run(fmt.Sprintf("%q", bad), func(t *testing.T) {
			if _, err := parseListing([]byte(bad)); err == nil {
				t.Fatal("got nil error")
			}
		})
	}
	if ents, err := parseListing(nil); err != nil || len(ents) != 0 {
		t.Fatalf("empty listing: got %v, %v", ents, err)
	}
}

func FuzzParseListing(f *testing.F) {
	f.Add([]byte("l 777 7 driver\x00d 755 0 power\x00f 644 4096 uevent\x00"))
	f.Add([]byte("f 4755 10 a b\nc\x00"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		ents, err := parseListing(b)
		if err != nil {
			return
		}
		// What parses must render back to a listing that parses the same.
		var again strings.Builder
		for i, e := range ents {
			if e.Name() == "" || strings.Contains(e.Name(), "/") {
				t.Fatalf("bad name %q", e.Name())
			}
			if i > 0 && ents[i-1].Name() > e.Name() {
				t.Fatalf("not sorted: %q before %q", ents[i-1].Name(), e.Name())
			}
			info, _ := e.Info()
			fmt.Fprintf(&again, "%c %o %d %s\x00", typeLetter(e.Type()), unixBits(info.Mode()), info.Size(), e.Name())
		}
		ents2, err := parseListing([]byte(again.String()))
		if err != nil || len(ents2) != len(ents) {
			t.Fatalf("re-parse: %v, %d entries, want %d", err, len(ents2), len(ents))
		}
		for i := range ents {
			a, _ := ents[i].Info()
			c, _ := ents2[i].Info()
			if a.Name() != c.Name() || a.Mode() != c.Mode() || a.Size() != c.Size() {
				t.Fatalf("entry %d: %v then %v", i, a, c)
			}
		}
	})
}

func typeLetter(m fs.FileMode) byte {
	for _, y := range []byte("fdlbcps") {
		if findType(y) == m {
			return y
		}
	}
	return 'U'
}

func unixBits(m fs.FileMode) uint32 {
	b := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}
