using SkiaSharp;

namespace Diffuse.Imaging;

/// <summary>
/// A small pixel font embedded in the library, so that figures carry legible text on machines without any system
/// font. Glyphs are 5 pixels wide and 7 tall above the baseline with 2 rows of descender, and are drawn as filled
/// rectangles: at scale 2 or 3 every font pixel becomes a crisp 2×2 or 3×3 square.
/// </summary>
/// <remarks>
/// Covers printable ASCII (32 to 126) and a few symbols used when explaining diffusion models: σ α β ε μ θ × · and the
/// typographic minus sign. Any other character is drawn as a hollow box. Letters are proportional (an <c>i</c> is
/// narrower than an <c>m</c>); digits all have the same width so that columns of numbers line up.
/// </remarks>
public static class BitmapFont
{
    /// <summary>Rows of a glyph above and on the baseline (capital letters and digits are this tall), in font pixels.</summary>
    public const int CapHeight = 7;

    /// <summary>Rows from the top of a capital letter to the bottom of a descender (as in g, p, y), in font pixels.</summary>
    public const int GlyphHeight = 9;

    /// <summary>Distance between the tops of two lines of text, in font pixels.</summary>
    public const int LineAdvance = 11;

    private const int SpaceAdvance = 4;

    private static readonly Dictionary<char, Glyph> Glyphs = BuildGlyphs();
    private static readonly Glyph Missing = Glyph.Parse("##### #...# #...# #...# #...# #...# #####", fullWidth: true);

    /// <summary>Whether the font has a glyph of its own for <paramref name="c"/> (others are drawn as a hollow box).</summary>
    public static bool HasGlyph(char c) => c == ' ' || Glyphs.ContainsKey(c);

    /// <summary>Height in pixels of one line of text at <paramref name="scale"/>, including the descenders.</summary>
    public static int LineHeight(int scale) => GlyphHeight * CheckScale(scale);

    /// <summary>
    /// Width in pixels of <paramref name="text"/> drawn at <paramref name="scale"/> (the widest line when the text
    /// holds line breaks); 0 for an empty string.
    /// </summary>
    public static int MeasureWidth(string text, int scale = 1)
    {
        ArgumentNullException.ThrowIfNull(text);
        CheckScale(scale);
        int widest = 0, width = 0;
        foreach (char c in text)
        {
            if (c == '\n')
            {
                widest = Math.Max(widest, width);
                width = 0;
                continue;
            }
            width += Advance(c);
        }
        widest = Math.Max(widest, width);
        // The last glyph's one-pixel gap is not part of the ink.
        return Math.Max(0, widest - (widest > 0 ? 1 : 0)) * scale;
    }

    /// <summary>Height in pixels of <paramref name="text"/> at <paramref name="scale"/>, counting its line breaks.</summary>
    public static int MeasureHeight(string text, int scale = 1)
    {
        ArgumentNullException.ThrowIfNull(text);
        CheckScale(scale);
        int lines = 1 + text.Count(c => c == '\n');
        return ((lines - 1) * LineAdvance + GlyphHeight) * scale;
    }

    /// <summary>
    /// Draws <paramref name="text"/> with its top-left corner (the top of the capital letters) at
    /// (<paramref name="x"/>, <paramref name="y"/>) in the canvas's current coordinates; '\n' starts a new line.
    /// </summary>
    /// <param name="canvas">Where to draw; its transform applies, so rotating it by 90° draws vertical text.</param>
    /// <param name="text">The text; characters without a glyph are drawn as a hollow box.</param>
    /// <param name="x">Left edge of the text.</param>
    /// <param name="y">Top edge of the capital letters.</param>
    /// <param name="color">Ink colour (its alpha is respected).</param>
    /// <param name="scale">Size of one font pixel in canvas pixels: 1, 2, 3 ...</param>
    public static void DrawText(SKCanvas canvas, string text, float x, float y, SKColor color, int scale = 1)
    {
        ArgumentNullException.ThrowIfNull(canvas);
        ArgumentNullException.ThrowIfNull(text);
        CheckScale(scale);
        using var paint = new SKPaint { Color = color, IsAntialias = false, Style = SKPaintStyle.Fill };
        float penX = x, penY = y;
        foreach (char c in text)
        {
            if (c == '\n')
            {
                penX = x;
                penY += LineAdvance * scale;
                continue;
            }
            if (c != ' ')
            {
                Glyph glyph = Glyphs.GetValueOrDefault(c, Missing);
                glyph.Draw(canvas, paint, penX, penY, scale);
            }
            penX += Advance(c) * scale;
        }
    }

    private static int Advance(char c) => c == ' ' ? SpaceAdvance : Glyphs.GetValueOrDefault(c, Missing).Width + 1;

    private static int CheckScale(int scale)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(scale, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(scale, 64);
        return scale;
    }

    /// <summary>One glyph: a bit mask per row (bit 4 is the leftmost of 5 columns), trimmed to its inked columns.</summary>
    private sealed class Glyph
    {
        private readonly byte[] rows;
        private readonly int firstColumn;

        private Glyph(byte[] rows, int firstColumn, int width)
        {
            this.rows = rows;
            this.firstColumn = firstColumn;
            Width = width;
        }

        public int Width { get; }

        /// <summary>Reads rows of '#' (ink) and '.' separated by spaces, top row first; missing rows are blank.</summary>
        public static Glyph Parse(string pattern, bool fullWidth)
        {
            string[] lines = pattern.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (lines.Length > GlyphHeight) throw new InvalidOperationException($"glyph '{pattern}' has more than {GlyphHeight} rows");
            var rows = new byte[GlyphHeight];
            int used = 0;
            for (int r = 0; r < lines.Length; r++)
            {
                if (lines[r].Length != 5) throw new InvalidOperationException($"glyph '{pattern}' has a row not 5 wide");
                for (int col = 0; col < 5; col++)
                {
                    if (lines[r][col] == '#') rows[r] |= (byte)(1 << (4 - col));
                }
                used |= rows[r];
            }
            if (fullWidth || used == 0) return new Glyph(rows, 0, 5);
            int first = 0, last = 4;
            while ((used & (1 << (4 - first))) == 0) first++;
            while ((used & (1 << (4 - last))) == 0) last--;
            return new Glyph(rows, first, last - first + 1);
        }

        public void Draw(SKCanvas canvas, SKPaint paint, float x, float y, int scale)
        {
            for (int r = 0; r < GlyphHeight; r++)
            {
                int bits = rows[r];
                int col = firstColumn;
                while (col < 5)
                {
                    if ((bits & (1 << (4 - col))) == 0)
                    {
                        col++;
                        continue;
                    }
                    int start = col;
                    while (col < 5 && (bits & (1 << (4 - col))) != 0) col++;
                    canvas.DrawRect(x + (start - firstColumn) * scale, y + r * scale, (col - start) * scale, scale, paint);
                }
            }
        }
    }

    private static Dictionary<char, Glyph> BuildGlyphs()
    {
        var glyphs = new Dictionary<char, Glyph>();
        foreach ((char c, string pattern) in GlyphTable)
        {
            glyphs.Add(c, Glyph.Parse(pattern, fullWidth: char.IsAsciiDigit(c)));
        }
        glyphs['\u2212'] = glyphs['-']; // typographic minus sign
        return glyphs;
    }

    // Rows top to bottom: 0 is the top of a capital, 6 sits on the baseline, 7 and 8 are descenders.
    private static (char, string)[] GlyphTable =>
    [
        ('!', "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#.."),
        ('"', ".#.#. .#.#. .#.#."),
        ('#', ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#."),
        ('$', "..#.. .#### #.#.. .###. ..#.# ####. ..#.."),
        ('%', "##... ##..# ...#. ..#.. .#... #..## ...##"),
        ('&', ".##.. #..#. #.#.. .#... #.#.# #..#. .##.#"),
        ('\'', "..#.. ..#.. ..#.."),
        ('(', "...#. ..#.. .#... .#... .#... ..#.. ...#."),
        (')', ".#... ..#.. ...#. ...#. ...#. ..#.. .#..."),
        ('*', "..... ..#.. #.#.# .###. #.#.# ..#.. ....."),
        ('+', "..... ..#.. ..#.. ##### ..#.. ..#.. ....."),
        (',', "..... ..... ..... ..... ..... ##... ##... .#... #...."),
        ('-', "..... ..... ..... ####. ..... ..... ....."),
        ('.', "..... ..... ..... ..... ..... ##... ##..."),
        ('/', "....# ....# ...#. ..#.. .#... #.... #...."),
        ('0', ".###. #...# #..## #.#.# ##..# #...# .###."),
        ('1', "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###."),
        ('2', ".###. #...# ....# ...#. ..#.. .#... #####"),
        ('3', "##### ...#. ..#.. ...#. ....# #...# .###."),
        ('4', "...#. ..##. .#.#. #..#. ##### ...#. ...#."),
        ('5', "##### #.... ####. ....# ....# #...# .###."),
        ('6', "..##. .#... #.... ####. #...# #...# .###."),
        ('7', "##### ....# ...#. ..#.. .#... .#... .#..."),
        ('8', ".###. #...# #...# .###. #...# #...# .###."),
        ('9', ".###. #...# #...# .#### ....# ...#. .##.."),
        (':', "..... ##... ##... ..... ##... ##... ....."),
        (';', "..... ##... ##... ..... ##... ##... .#... #...."),
        ('<', "...#. ..#.. .#... #.... .#... ..#.. ...#."),
        ('=', "..... ..... ##### ..... ##### ..... ....."),
        ('>', ".#... ..#.. ...#. ....# ...#. ..#.. .#..."),
        ('?', ".###. #...# ....# ...#. ..#.. ..... ..#.."),
        ('@', ".###. #...# #.### #.#.# #.### #.... .####"),
        ('A', ".###. #...# #...# ##### #...# #...# #...#"),
        ('B', "####. #...# #...# ####. #...# #...# ####."),
        ('C', ".###. #...# #.... #.... #.... #...# .###."),
        ('D', "####. #...# #...# #...# #...# #...# ####."),
        ('E', "##### #.... #.... ####. #.... #.... #####"),
        ('F', "##### #.... #.... ####. #.... #.... #...."),
        ('G', ".###. #...# #.... #.### #...# #...# .####"),
        ('H', "#...# #...# #...# ##### #...# #...# #...#"),
        ('I', ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###."),
        ('J', "..### ...#. ...#. ...#. ...#. #..#. .##.."),
        ('K', "#...# #..#. #.#.. ##... #.#.. #..#. #...#"),
        ('L', "#.... #.... #.... #.... #.... #.... #####"),
        ('M', "#...# ##.## #.#.# #.#.# #...# #...# #...#"),
        ('N', "#...# #...# ##..# #.#.# #..## #...# #...#"),
        ('O', ".###. #...# #...# #...# #...# #...# .###."),
        ('P', "####. #...# #...# ####. #.... #.... #...."),
        ('Q', ".###. #...# #...# #...# #.#.# #..#. .##.#"),
        ('R', "####. #...# #...# ####. #.#.. #..#. #...#"),
        ('S', ".#### #.... #.... .###. ....# ....# ####."),
        ('T', "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#.."),
        ('U', "#...# #...# #...# #...# #...# #...# .###."),
        ('V', "#...# #...# #...# #...# #...# .#.#. ..#.."),
        ('W', "#...# #...# #...# #.#.# #.#.# #.#.# .#.#."),
        ('X', "#...# #...# .#.#. ..#.. .#.#. #...# #...#"),
        ('Y', "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#.."),
        ('Z', "##### ....# ...#. ..#.. .#... #.... #####"),
        ('[', "###.. #.... #.... #.... #.... #.... ###.."),
        ('\\', "#.... #.... .#... ..#.. ...#. ....# ....#"),
        (']', "###.. ..#.. ..#.. ..#.. ..#.. ..#.. ###.."),
        ('^', "..#.. .#.#. #...#"),
        ('_', "..... ..... ..... ..... ..... ..... ..... #####"),
        ('`', ".#... ..#.."),
        ('a', "..... ..... .###. ....# .#### #...# .####"),
        ('b', "#.... #.... #.##. ##..# #...# #...# ####."),
        ('c', "..... ..... .###. #.... #.... #...# .###."),
        ('d', "....# ....# .##.# #..## #...# #...# .####"),
        ('e', "..... ..... .###. #...# ##### #.... .###."),
        ('f', "..##. .#..# .#... ###.. .#... .#... .#..."),
        ('g', "..... ..... .#### #...# #...# #...# .#### ....# .###."),
        ('h', "#.... #.... #.##. ##..# #...# #...# #...#"),
        ('i', ".#... ..... ##... .#... .#... .#... ###.."),
        ('j', "...#. ..... ..##. ...#. ...#. ...#. ...#. #..#. .##.."),
        ('k', "#.... #.... #..#. #.#.. ##... #.#.. #..#."),
        ('l', "##... .#... .#... .#... .#... .#... ###.."),
        ('m', "..... ..... ##.#. #.#.# #.#.# #.#.# #.#.#"),
        ('n', "..... ..... #.##. ##..# #...# #...# #...#"),
        ('o', "..... ..... .###. #...# #...# #...# .###."),
        ('p', "..... ..... ####. #...# #...# #...# ####. #.... #...."),
        ('q', "..... ..... .#### #...# #...# #...# .#### ....# ....#"),
        ('r', "..... ..... #.##. ##..# #.... #.... #...."),
        ('s', "..... ..... .###. #.... .###. ....# ####."),
        ('t', ".#... .#... ###.. .#... .#... .#..# ..##."),
        ('u', "..... ..... #...# #...# #...# #..## .##.#"),
        ('v', "..... ..... #...# #...# #...# .#.#. ..#.."),
        ('w', "..... ..... #...# #...# #.#.# #.#.# .#.#."),
        ('x', "..... ..... #...# .#.#. ..#.. .#.#. #...#"),
        ('y', "..... ..... #...# #...# #...# #...# .#### ....# .###."),
        ('z', "..... ..... ##### ...#. ..#.. .#... #####"),
        ('{', "...#. ..#.. ..#.. .#... ..#.. ..#.. ...#."),
        ('|', "..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#.."),
        ('}', ".#... ..#.. ..#.. ...#. ..#.. ..#.. .#..."),
        ('~', "..... ..... .#... #.#.# ...#."),
        ('\u03C3', "..... ..... .#### #..#. #...# #...# .###."),          // σ
        ('\u03B1', "..... ..... .##.# #..#. #..#. #..#. .##.#"),          // α
        ('\u03B2', ".##.. #..#. #.#.. #..#. #...# #...# ####. #.... #...."), // β
        ('\u03B5', "..... ..... .###. #.... .##.. #.... .###."),          // ε
        ('\u03BC', "..... ..... #...# #...# #...# #..## ###.# #.... #...."), // μ
        ('\u03B8', ".###. #...# #...# ##### #...# #...# .###."),          // θ
        ('\u00D7', "..... ..... #...# .#.#. ..#.. .#.#. #...#"),          // ×
        ('\u00B7', "..... ..... ..... ##... ##..."),                      // ·
    ];
}
