// Package jsondepth measures how deeply JSON text nests, without decoding it,
// so that a recursive decoder is only ever handed input it can survive.
package jsondepth

// Exceeds reports whether data nests objects and arrays deeper than max.
// Brackets inside strings (escapes included) do not count. It does not
// validate the JSON.
func Exceeds(data []byte, max int) bool {
	depth, inString, escaped := 0, false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > max {
				return true
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return false
}
