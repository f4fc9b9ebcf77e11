// Test judge for `llmtool export ollama` (tests/export_cli.rs): reads a Modelfile the way
// Ollama's documentation describes it, then renders its TEMPLATE with Go's own text/template
// over conversations, with the data Ollama's chat path gives a template.
//
//	go run render.go DIR/Modelfile CONVERSATIONS.json
//
// prints {"commands": [{"name": …, "args": …}], "renders": ["…", …]} or exits 1 with the error.
//
// The Modelfile grammar (ollama docs/modelfile.md): `# comment` lines; `INSTRUCTION arguments`
// with the instructions FROM (required), PARAMETER, TEMPLATE, SYSTEM, ADAPTER, LICENSE, MESSAGE,
// case-insensitive; `PARAMETER <name> <value>` with the documented names and value types;
// `MESSAGE <role> <text>` with role system, user or assistant; a value is the rest of the line,
// `"…"` on one line, or `"""…"""` over several lines. This reader is stricter than Ollama's: a
// character Go's strconv.IsPrint rejects (which Ollama's parser drops, parser/parser.go) is an
// error here, as is text after a closing quote.
//
// Rendering follows Ollama's template package (template/template.go): the template is parsed with
// Option("missingkey=zero") and the function "json"; messages are collated (consecutive messages
// of one role joined by "\n\n"; .System is every system message joined by "\n\n"); a template that
// uses .Messages is executed once over the map {System, Messages, Tools, Response: "", Think,
// IsThinkSet}.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/template"
)

type Command struct {
	Name string `json:"name"`
	Args string `json:"args"`
}

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// The documented PARAMETER names and their value types.
var paramTypes = map[string]string{
	"mirostat": "int", "mirostat_eta": "float", "mirostat_tau": "float", "num_ctx": "int",
	"repeat_last_n": "int", "repeat_penalty": "float", "temperature": "float", "seed": "int",
	"stop": "string", "num_predict": "int", "top_k": "int", "top_p": "float", "min_p": "float",
}

var instructions = map[string]bool{
	"from": true, "parameter": true, "template": true, "system": true, "adapter": true, "license": true, "message": true,
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

// value reads an argument starting at text[i:]: `"""…"""`, `"…"` or the rest of the line. It
// returns the value and the index after it (past the end of its line).
func value(text string, i int, line int) (string, int) {
	rest := text[i:]
	var v string
	var after string
	switch {
	case strings.HasPrefix(rest, `"""`):
		end := strings.Index(rest[3:], `"""`)
		if end < 0 {
			fail("line %d: unterminated \"\"\"", line)
		}
		v = rest[3 : 3+end]
		after = rest[3+end+3:]
	case strings.HasPrefix(rest, `"`):
		nl := strings.IndexAny(rest, "\r\n")
		if nl < 0 {
			nl = len(rest)
		}
		end := strings.LastIndex(rest[:nl], `"`)
		if end <= 0 {
			fail("line %d: unterminated \"", line)
		}
		v = rest[1:end]
		after = rest[end+1:]
	default:
		nl := strings.IndexAny(rest, "\r\n")
		if nl < 0 {
			nl = len(rest)
		}
		v = strings.TrimSpace(rest[:nl])
		after = rest[nl:]
	}
	nl := strings.IndexAny(after, "\n")
	tail := after
	if nl >= 0 {
		tail = after[:nl]
	}
	if strings.TrimSpace(tail) != "" {
		fail("line %d: text after the value: %q", line, tail)
	}
	for _, r := range v {
		if r != '\n' && r != '\t' && !strconv.IsPrint(r) {
			fail("line %d: unprintable character %U in a value (Ollama's parser drops it)", line, r)
		}
	}
	consumed := len(text) - len(after)
	if nl >= 0 {
		consumed += nl + 1
	} else {
		consumed = len(text)
	}
	return v, consumed
}

func parseModelfile(text string) []Command {
	var cmds []Command
	i := 0
	for i < len(text) {
		line := 1 + strings.Count(text[:i], "\n")
		// skip blank space
		if c := text[i]; c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			i++
			continue
		}
		if text[i] == '#' {
			nl := strings.IndexByte(text[i:], '\n')
			if nl < 0 {
				break
			}
			i += nl + 1
			continue
		}
		j := i
		for j < len(text) && (text[j] >= 'a' && text[j] <= 'z' || text[j] >= 'A' && text[j] <= 'Z') {
			j++
		}
		word := strings.ToLower(text[i:j])
		if !instructions[word] {
			fail("line %d: unknown instruction %q", line, text[i:j])
		}
		if j >= len(text) || (text[j] != ' ' && text[j] != '\t') {
			fail("line %d: %s needs an argument", line, word)
		}
		for j < len(text) && (text[j] == ' ' || text[j] == '\t') {
			j++
		}
		name := word
		switch word {
		case "from":
			name = "model"
		case "parameter", "message":
			k := j
			for k < len(text) && text[k] != ' ' && text[k] != '\t' && text[k] != '\n' {
				k++
			}
			name = text[j:k]
			if word == "parameter" {
				if _, ok := paramTypes[name]; !ok {
					fail("line %d: unknown PARAMETER %q", line, name)
				}
			} else if name != "system" && name != "user" && name != "assistant" {
				fail("line %d: MESSAGE role %q", line, name)
			}
			for k < len(text) && (text[k] == ' ' || text[k] == '\t') {
				k++
			}
			j = k
		}
		v, next := value(text, j, line)
		if word == "parameter" {
			switch paramTypes[name] {
			case "int":
				if _, err := strconv.Atoi(v); err != nil {
					fail("line %d: PARAMETER %s wants an int: %q", line, name, v)
				}
			case "float":
				if _, err := strconv.ParseFloat(v, 64); err != nil {
					fail("line %d: PARAMETER %s wants a float: %q", line, name, v)
				}
			}
		}
		if word == "message" {
			v = name + ": " + v
			name = "message"
		}
		cmds = append(cmds, Command{Name: name, Args: v})
		i = next
	}
	hasFrom := false
	for _, c := range cmds {
		hasFrom = hasFrom || c.Name == "model"
	}
	if !hasFrom {
		fail("no FROM line")
	}
	return cmds
}

func collate(msgs []Message) (string, []*Message) {
	var system []string
	var out []*Message
	for i := range msgs {
		m := msgs[i]
		if m.Role == "system" {
			system = append(system, m.Content)
		}
		if len(out) > 0 && out[len(out)-1].Role == m.Role {
			out[len(out)-1].Content += "\n\n" + m.Content
		} else {
			out = append(out, &m)
		}
	}
	return strings.Join(system, "\n\n"), out
}

func main() {
	if len(os.Args) != 3 {
		fail("usage: render MODELFILE CONVERSATIONS.json")
	}
	mf, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	cmds := parseModelfile(string(mf))
	var convs [][]Message
	cj, err := os.ReadFile(os.Args[2])
	if err != nil {
		fail("%v", err)
	}
	if err := json.Unmarshal(cj, &convs); err != nil {
		fail("%v", err)
	}
	tmplText := ""
	for _, c := range cmds {
		if c.Name == "template" {
			tmplText = c.Args
		}
	}
	renders := []string{}
	if tmplText != "" {
		funcs := template.FuncMap{"json": func(v any) string { b, _ := json.Marshal(v); return string(b) }}
		t, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(tmplText)
		if err != nil {
			fail("TEMPLATE does not parse: %v", err)
		}
		if !strings.Contains(tmplText, ".Messages") {
			fail("TEMPLATE does not use .Messages (Ollama would take the legacy prompt/response path)")
		}
		for _, conv := range convs {
			system, messages := collate(conv)
			var b strings.Builder
			data := map[string]any{
				"System": system, "Messages": messages, "Tools": nil, "Response": "", "Think": false, "IsThinkSet": false,
			}
			if err := t.Execute(&b, data); err != nil {
				fail("TEMPLATE execution: %v", err)
			}
			renders = append(renders, b.String())
		}
	}
	out, _ := json.Marshal(map[string]any{"commands": cmds, "renders": renders})
	fmt.Println(string(out))
}
