/// <reference path="../../libs/actorapi/gnome.d.ts" />
// Connect Four: two players drop discs in turn into a grid of seven columns
// and six rows; a disc falls to the lowest free cell of its column. Four of
// one player's discs in a row, a column or a diagonal win; a full grid with
// no such line is a draw. The same rules as examples/game_portal's
// connect4.go, in the same shapes.

const COLS = 7;
const ROWS = 6;
// CONNECT is how many discs in a line win.
const CONNECT = 4;

// Why a move is refused; the page shows the text.
const errors = {
  gameOver: "the game is over",
  notYourTurn: "it is not your turn",
  noColumn: "there is no such column",
  columnFull: "that column is full",
  noSeat: "you are not playing in this game",
};

// The four lines through a cell: across, up, and the two diagonals.
const directions = [[1, 0], [0, 1], [1, 1], [1, -1]];

// Game is one game: grid holds each cell's seat (1 or 2), 0 when empty, by
// column then row from the bottom; turn is the seat to move, 0 once over;
// moves the columns played; winner the winning seat (0 for none); line the
// winner's discs in a line; draw true when the grid filled up.
class Game {
  constructor() {
    this.grid = [];
    for (let c = 0; c < COLS; c++) {
      this.grid.push(new Array(ROWS).fill(0));
    }
    this.turn = 1;
    this.moves = [];
    this.winner = 0;
    this.line = null;
    this.draw = false;
  }

  over() { return this.winner !== 0 || this.draw || this.turn === 0; }

  height(col) {
    let n = 0;
    while (n < ROWS && this.grid[col][n] !== 0) {
      n++;
    }
    return n;
  }

  // play drops seat's disc into col and returns {row} where it landed, or
  // {error} saying why the move is refused.
  play(seat, col) {
    if (this.over()) return { error: errors.gameOver };
    if (seat !== 1 && seat !== 2) return { error: errors.noSeat };
    if (seat !== this.turn) return { error: errors.notYourTurn };
    if (!Number.isInteger(col) || col < 0 || col >= COLS) return { error: errors.noColumn };
    const row = this.height(col);
    if (row === ROWS) return { error: errors.columnFull };
    this.grid[col][row] = seat;
    this.moves.push(col);
    const line = this.lineThrough(col, row);
    if (line !== null) {
      this.winner = seat;
      this.line = line;
      this.turn = 0;
    } else if (this.moves.length === COLS * ROWS) {
      this.draw = true;
      this.turn = 0;
    } else {
      this.turn = 3 - seat;
    }
    return { row: row };
  }

  // resign ends the game with the other seat winning (a player left).
  resign(seat) {
    if (this.over() || (seat !== 1 && seat !== 2)) return;
    this.winner = 3 - seat;
    this.turn = 0;
  }

  // lineThrough is the longest line of at least CONNECT discs of the same
  // seat through the cell at col, row, or null.
  lineThrough(col, row) {
    const seat = this.grid[col][row];
    for (const d of directions) {
      const line = [[col, row]];
      for (const sign of [-1, 1]) {
        let c = col + sign * d[0];
        let r = row + sign * d[1];
        while (c >= 0 && c < COLS && r >= 0 && r < ROWS && this.grid[c][r] === seat) {
          if (sign < 0) line.unshift([c, r]); else line.push([c, r]);
          c += sign * d[0];
          r += sign * d[1];
        }
      }
      if (line.length >= CONNECT) return line;
    }
    return null;
  }
}

module.exports = { Game, COLS, ROWS };
