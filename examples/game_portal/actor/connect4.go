package main

import "errors"

// Connect Four: two players drop discs in turn into a grid of seven columns
// and six rows; a disc falls to the lowest free cell of its column. Four of
// one player's discs in a row, a column or a diagonal win; a full grid with
// no such line is a draw.

const (
	// Cols and Rows are the grid's size.
	Cols = 7
	Rows = 6
	// connect is how many discs in a line win.
	connect = 4
)

// Why a move is refused; the page shows the text.
var (
	ErrGameOver    = errors.New("the game is over")
	ErrNotYourTurn = errors.New("it is not your turn")
	ErrNoColumn    = errors.New("there is no such column")
	ErrColumnFull  = errors.New("that column is full")
	ErrNoSeat      = errors.New("you are not playing in this game")
)

// Cell is a cell of the grid by column and row, row 0 at the bottom.
type Cell [2]int

// Game is one game of Connect Four. Its zero value is not ready: use
// NewGame.
type Game struct {
	// Grid holds each cell's seat (1 or 2), 0 when empty, by column then
	// row from the bottom.
	Grid [Cols][Rows]int
	// Turn is the seat to move; 0 once the game is over.
	Turn int
	// Moves are the columns played, in order.
	Moves []int
	// Winner is the winning seat, 0 for none (yet, or a draw).
	Winner int
	// Line is the winner's four (or more) discs in a line.
	Line []Cell
	// Draw is true when the grid filled up with no winner.
	Draw bool
}

// NewGame is a game with an empty grid, seat 1 to move.
func NewGame() *Game { return &Game{Turn: 1} }

// Over reports whether the game has ended.
func (g *Game) Over() bool { return g.Winner != 0 || g.Draw || g.Turn == 0 }

// Height is how many discs column col holds.
func (g *Game) Height(col int) int {
	n := 0
	for n < Rows && g.Grid[col][n] != 0 {
		n++
	}
	return n
}

// Play drops seat's disc into col and returns the row it lands on; the
// game then goes to the other seat, or ends.
func (g *Game) Play(seat, col int) (row int, err error) {
	switch {
	case g.Over():
		return 0, ErrGameOver
	case seat != 1 && seat != 2:
		return 0, ErrNoSeat
	case seat != g.Turn:
		return 0, ErrNotYourTurn
	case col < 0 || col >= Cols:
		return 0, ErrNoColumn
	}
	row = g.Height(col)
	if row == Rows {
		return 0, ErrColumnFull
	}
	g.Grid[col][row] = seat
	g.Moves = append(g.Moves, col)
	if line := g.lineThrough(col, row); line != nil {
		g.Winner, g.Line, g.Turn = seat, line, 0
		return row, nil
	}
	if len(g.Moves) == Cols*Rows {
		g.Draw, g.Turn = true, 0
		return row, nil
	}
	g.Turn = 3 - seat
	return row, nil
}

// Resign ends the game with the other seat winning (a player left).
func (g *Game) Resign(seat int) {
	if g.Over() || (seat != 1 && seat != 2) {
		return
	}
	g.Winner, g.Turn = 3-seat, 0
}

// directions are the four lines through a cell: across, up, and the two
// diagonals.
var directions = [4][2]int{{1, 0}, {0, 1}, {1, 1}, {1, -1}}

// lineThrough is the longest line of at least connect discs of the same
// seat through the cell at col, row, or nil.
func (g *Game) lineThrough(col, row int) []Cell {
	seat := g.Grid[col][row]
	for _, d := range directions {
		line := []Cell{{col, row}}
		for _, sign := range [2]int{-1, 1} {
			c, r := col+sign*d[0], row+sign*d[1]
			for c >= 0 && c < Cols && r >= 0 && r < Rows && g.Grid[c][r] == seat {
				if sign < 0 {
					line = append([]Cell{{c, r}}, line...)
				} else {
					line = append(line, Cell{c, r})
				}
				c, r = c+sign*d[0], r+sign*d[1]
			}
		}
		if len(line) >= connect {
			return line
		}
	}
	return nil
}
