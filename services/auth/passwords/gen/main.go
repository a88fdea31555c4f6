// Command gen writes common-passwords.txt: the passwords registration
// refuses. They are the passwords that lead every published breach analysis
// (digit runs, keyboard walks, the word "password", pet and first names,
// sports, pop culture), each also with the suffixes people add to satisfy
// length rules (digits, years, "!"). Regenerate with `go generate`.
package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

var bases = strings.Fields(`
123456 12345678 123456789 1234567890 12345 1234 1234567 111111 11111111 000000 00000000 121212 123123
123321 654321 666666 696969 777777 7777777 888888 987654321 112233 131313 159753 555555 999999 147258369
password passw0rd pa55word p@ssword p@ssw0rd passwort motdepasse contrasena secret letmein welcome
qwerty qwertyuiop qwerty123 qwertz azerty asdfgh asdfghjkl zxcvbn zxcvbnm qazwsx 1qaz2wsx 1q2w3e4r 1q2w3e
q1w2e3r4 zaq12wsx abc123 abcdef abcd1234 aaaaaa iloveyou loveme lovely love trustno1 whatever nothing
dragon monkey shadow master sunshine princess football baseball soccer hockey basketball batman superman
spiderman starwars pokemon minecraft freedom mustang harley ranger hunter killer thunder matrix ninja
michael jennifer jordan jessica michelle charlie andrew daniel robert thomas joshua matthew ashley
amanda nicole taylor george jasmine maggie ginger pepper tigger buster cookie cheese chocolate summer
winter flower butterfly angel sweety babygirl hello hello123 welcome1 admin administrator root toor
login guest user default changeme test test123 testing computer internet samsung google apple
liverpool arsenal chelsea barcelona yankees cowboys dallas eagles lakers packers steelers
mercedes ferrari porsche corvette jordan23 blink182 metallica slipknot nirvana beatles
princess1 sunshine1 iloveyou1 football1 baseball1 superman1 batman1 charlie1 monkey1 dragon1
letmein1 welcome123 admin123 password12 password123 qwerty1 qwerty12 abc12345 zaq1zaq1
`)

var suffixes = []string{"", "1", "12", "123", "1234", "!", "01", "69", "007", "2020", "2021", "2022", "2023", "2024", "2025", "2026"}

func main() {
	seen := map[string]bool{}
	for _, b := range bases {
		for _, s := range suffixes {
			seen[strings.ToLower(b+s)] = true
		}
	}
	list := make([]string, 0, len(seen))
	for p := range seen {
		list = append(list, p)
	}
	sort.Strings(list)
	if err := os.WriteFile("common-passwords.txt", []byte(strings.Join(list, "\n")+"\n"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
