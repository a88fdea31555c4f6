package main

import (
	"errors"
	"slices"
	"testing"
)

// play plays cols in turn from seat 1 and fails on the first refusal.
func play(t *testing.T, g *Game, cols ...int) {
	t.Helper()
	for _, c := range cols {
		if _, err := g.Play(g.Turn, c); err != nil {
			t.Fatalf("move %d in column %d: %v", len(g.Moves)+1, c, err)
		}
	}
}

func TestConnectFourWins(t *testing.T) {
	for _, tc := range []struct {
		name   string
		moves  []int
		winner int
		line   []Cell
	}{
		{"a column", []int{0, 1, 0, 1, 0, 1, 0}, 1, []Cell{{0, 0}, {0, 1}, {0, 2}, {0, 3}}},
		{"a row", []int{0, 0, 1, 1, 2, 2, 3}, 1, []Cell{{0, 0}, {1, 0}, {2, 0}, {3, 0}}},
		{"a row by the second player", []int{6, 0, 6, 1, 5, 2, 6, 3}, 2, []Cell{{0, 0}, {1, 0}, {2, 0}, {3, 0}}},
		{"a rising diagonal", []int{0, 1, 1, 2, 2, 3, 2, 3, 3, 6, 3}, 1, []Cell{{0, 0}, {1, 1}, {2, 2}, {3, 3}}},
		{"a falling diagonal", []int{6, 5, 5, 4, 4, 3, 4, 3, 3, 0, 3}, 1, []Cell{{3, 3}, {4, 2}, {5, 1}, {6, 0}}},
		// The last disc fills the gap of a row of five.
		{"five in a row", []int{0, 0, 1, 1, 3, 3, 4, 4, 2}, 1, []Cell{{0, 0}, {1, 0}, {2, 0}, {3, 0}, {4, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGame()
			play(t, g, tc.moves...)
			if g.Winner != tc.winner || !g.Over() || g.Turn != 0 || g.Draw {
				t.Fatalf("winner %d turn %d draw %v, want %d", g.Winner, g.Turn, g.Draw, tc.winner)
			}
			if !slices.Equal(g.Line, tc.line) {
				t.Errorf("line %v, want %v", g.Line, tc.line)
			}
			if _, err := g.Play(1, 5); !errors.Is(err, ErrGameOver) {
				t.Errorf("a move after the win: %v", err)
			}
		})
	}
}

func TestConnectFourRefusals(t *testing.T) {
	g := NewGame()
	for _, tc := range []struct {
		seat, col int
		want      error
	}{
		{2, 3, ErrNotYourTurn},
		{0, 3, ErrNoSeat},
		{3, 3, ErrNoSeat},
		{1, -1, ErrNoColumn},
		{1, Cols, ErrNoColumn},
	} {
		if _, err := g.Play(tc.seat, tc.col); !errors.Is(err, tc.want) {
			t.Errorf("seat %d column %d: %v, want %v", tc.seat, tc.col, err, tc.want)
		}
	}
	if len(g.Moves) != 0 || g.Turn != 1 {
		t.Fatalf("refused moves changed the game: %+v", g)
	}
	// A full column: six discs, alternating, win nobody.
	play(t, g, 2, 2, 2, 2, 2, 2)
	if row, err := g.Play(1, 2); !errors.Is(err, ErrColumnFull) || row != 0 {
		t.Errorf("a seventh disc in a column: %d %v", row, err)
	}
	if g.Turn != 1 || g.Height(2) != Rows {
		t.Errorf("turn %d height %d after a full column", g.Turn, g.Height(2))
	}
	if row, err := g.Play(1, 3); err != nil || row != 0 {
		t.Errorf("the next move: %d %v", row, err)
	}
}

// A full grid without four in a line is a draw.
func TestConnectFourDraw(t *testing.T) {
	g := NewGame()
	moves := []int{0, 1, 0, 0, 0, 5, 0, 0, 1, 1, 2, 1, 3, 1, 1, 2, 2, 6, 2, 6, 2, 2, 4, 4, 3, 4, 3, 3, 5, 3, 3, 4, 4, 4, 5, 5, 6, 5, 6, 6, 6, 5}
	play(t, g, moves...)
	if !g.Draw || g.Winner != 0 || !g.Over() || len(g.Moves) != Cols*Rows {
		t.Fatalf("draw %v winner %d moves %d line %v", g.Draw, g.Winner, len(g.Moves), g.Line)
	}
}

func TestConnectFourResign(t *testing.T) {
	g := NewGame()
	play(t, g, 3)
	g.Resign(2)
	if g.Winner != 1 || !g.Over() {
		t.Fatalf("after seat 2 resigned: winner %d", g.Winner)
	}
	g.Resign(1) // over already: no change
	if g.Winner != 1 {
		t.Fatalf("a resignation after the end changed the winner to %d", g.Winner)
	}
}
