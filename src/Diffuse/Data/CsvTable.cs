using System.Globalization;
using System.Text;
using Diffuse.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Data;

/// <summary>
/// A table of numbers read from a CSV file: a header row of unique column names, then one row of numbers per line.
/// </summary>
/// <remarks>
/// <para>Format. Fields are separated by commas; when the header has no comma but has a semicolon or a tab, that
/// character is the separator for the whole file. Header names may be quoted (<c>"a, b"</c>, with <c>""</c> for a
/// quote inside). Numbers use the invariant culture: <c>.</c> as the decimal point, optional sign and exponent, no
/// thousands separators; spaces around a field and quotes around a number are ignored. Every value must be finite and
/// representable as a 32-bit float. Blank lines are allowed only at the end of the file. A UTF-8 byte order mark is
/// skipped.</para>
/// <para>Errors. <see cref="Load"/> throws <see cref="DiffuseException"/> naming the file, the 1-based line (the
/// header is line 1) and, for a bad value, the 1-based column number and its header name.</para>
/// </remarks>
public sealed class CsvTable
{
    private const NumberStyles NumberStyle = NumberStyles.Float;
    private const int MaxQuotedText = 40;
    private const int MaxValues = int.MaxValue / sizeof(float); // the most that Buffer.BlockCopy moves in one call

    private CsvTable(string[] columns, float[,] values)
    {
        Columns = Array.AsReadOnly(columns);
        Values = values;
    }

    /// <summary>The column names, in file order.</summary>
    public IReadOnlyList<string> Columns { get; }

    /// <summary>The number of data rows (lines after the header).</summary>
    public int Rows => Values.GetLength(0);

    /// <summary>
    /// The values as 32-bit floats, indexed <c>[row, column]</c>, each the float nearest the decimal text. This is the
    /// table's own storage, returned without copying: treat it as read-only.
    /// </summary>
    public float[,] Values { get; }

    /// <summary>Reads a numeric CSV file with a header row (format in the class remarks).</summary>
    /// <exception cref="DiffuseException">
    /// The file is missing, unreadable, empty or has no data rows; a header name is empty or repeated; a line is empty
    /// before the end; a row has the wrong number of fields; or a value is empty, not a number or not finite.
    /// </exception>
    public static CsvTable Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path))
            throw new DiffuseException($"'{path}' is a folder, not a CSV file: give the path of the file itself.");
        if (!File.Exists(path))
            throw new DiffuseException($"CSV file '{path}' does not exist: check the path (relative paths start from '{Environment.CurrentDirectory}').");
        try
        {
            // Invalid UTF-8 is an error, not silently replaced by U+FFFD (a header name would change unseen).
            using var reader = new StreamReader(path, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true),
                detectEncodingFromByteOrderMarks: true, new FileStreamOptions { Access = FileAccess.Read, Share = FileShare.Read, BufferSize = 1 << 16 });
            return Parse(reader, path);
        }
        catch (DecoderFallbackException e)
        {
            var (line, column, offset, value) = CsvText.FindInvalidUtf8(path);
            throw new DiffuseException(
                $"{path}: line {line}, byte {column} (byte {offset} of the file, 0x{value:X2}) is not valid UTF-8; save the file as UTF-8 (a spreadsheet's \"CSV UTF-8\" format).", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DiffuseException($"Cannot read CSV file '{path}': {e.Message}", e);
        }
    }

    /// <summary>
    /// Writes <paramref name="values"/> under a header of <paramref name="columns"/>, comma-separated, with each value
    /// in its shortest form that reads back to the same float. The file is replaced atomically: it is either the old
    /// or the complete new file, never a part. Names are quoted when they hold a separator, a quote, surrounding
    /// spaces or read as a number.
    /// </summary>
    /// <exception cref="ArgumentException">The number of names differs from the number of value columns.</exception>
    /// <exception cref="DiffuseException">
    /// There are no rows or columns, a name is empty, repeated or holds a line break, a value is not finite (the file
    /// could not be read back), or the file cannot be written.
    /// </exception>
    public static void Save(string path, IReadOnlyList<string> columns, float[,] values)
    {
        ArgumentNullException.ThrowIfNull(columns);
        ArgumentNullException.ThrowIfNull(values);
        if (columns.Count != values.GetLength(1))
            throw new ArgumentException($"{columns.Count} column names were given for {values.GetLength(1)} value columns.", nameof(columns));
        if (columns.Count == 0)
            throw new DiffuseException($"Cannot save '{path}': the table has no columns; give at least one column of values.");
        if (values.GetLength(0) == 0)
            throw new DiffuseException($"Cannot save '{path}': the table has no rows; give at least one row of values.");
        Save(path, columns, [values]);
    }

    /// <summary>
    /// Writes the rows of <paramref name="blocks"/>, one block after another, under a header of
    /// <paramref name="columns"/>, as <see cref="Save(string, IReadOnlyList{string}, float[,])"/> does; each block is
    /// written as soon as it is enumerated, so the rows need never be in memory at once (a sampler's batches, say). The
    /// file appears only when the last block is written: an error or an interruption leaves the old file, or none.
    /// </summary>
    /// <exception cref="ArgumentException">A block's number of columns differs from the number of names.</exception>
    /// <exception cref="DiffuseException">
    /// There are no rows or columns, a name is empty, repeated or holds a line break, a value is not finite, or the
    /// file cannot be written.
    /// </exception>
    public static void Save(string path, IReadOnlyList<string> columns, IEnumerable<float[,]> blocks)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(columns);
        ArgumentNullException.ThrowIfNull(blocks);
        int width = columns.Count;
        if (width == 0)
            throw new DiffuseException($"Cannot save '{path}': the table has no columns; give at least one column of values.");
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int c = 0; c < width; c++)
        {
            string name = columns[c] ?? "";
            if (name.Trim().Length == 0)
                throw new DiffuseException($"Cannot save '{path}': column {c + 1} has an empty name; give every column a name.");
            if (name.AsSpan().IndexOfAny('\r', '\n') >= 0)
                throw new DiffuseException($"Cannot save '{path}': the name of column {c + 1} contains a line break; use a single-line name.");
            if (!seen.TryAdd(name, c + 1))
                throw new DiffuseException($"Cannot save '{path}': column {c + 1} has the name '{name}' of column {seen[name]}; give every column a unique name.");
        }
        try
        {
            AtomicFile.Write(path, stream => Write(stream, path, columns, blocks));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DiffuseException($"Cannot write CSV file '{path}': {e.Message}", e);
        }
    }

    /// <summary>The values as a new float32 CPU tensor of shape <c>[Rows, Columns.Count]</c>, owned by the caller.</summary>
    public Tensor ToTensor()
    {
        // Straight into the tensor's memory: no intermediate array (a large table is then held twice, not three times).
        var result = torch.empty([Rows, Columns.Count], ScalarType.Float32);
        var source = System.Runtime.InteropServices.MemoryMarshal.CreateReadOnlySpan(ref Values[0, 0], Values.Length);
        source.CopyTo(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(result.bytes));
        return result;
    }

    private static void Write(Stream stream, string path, IReadOnlyList<string> columns, IEnumerable<float[,]> blocks)
    {
        using var writer = new StreamWriter(stream, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), 1 << 16, leaveOpen: true);
        writer.NewLine = "\n";
        for (int c = 0; c < columns.Count; c++)
        {
            if (c > 0) writer.Write(',');
            writer.Write(QuoteIfNeeded(columns[c]));
        }
        writer.Write('\n');
        Span<char> buffer = stackalloc char[32];
        long row = 0;
        foreach (var values in blocks)
        {
            if (values.GetLength(1) != columns.Count)
                throw new ArgumentException($"{columns.Count} column names were given for {values.GetLength(1)} value columns.", nameof(blocks));
            int rows = values.GetLength(0), width = values.GetLength(1);
            for (int r = 0; r < rows; r++, row++)
            {
                for (int c = 0; c < width; c++)
                {
                    if (!float.IsFinite(values[r, c]))
                        throw new DiffuseException(
                            $"Cannot save '{path}': row {row + 1}, column {c + 1} ('{columns[c]}') is {values[r, c].ToString(CultureInfo.InvariantCulture)}; "
                            + "CSV tables hold finite numbers only, so remove or replace that value.");
                    if (c > 0) writer.Write(',');
                    values[r, c].TryFormat(buffer, out int written, default, CultureInfo.InvariantCulture);
                    writer.Write(buffer[..written]);
                }
                writer.Write('\n');
            }
        }
        if (row == 0)
            throw new DiffuseException($"Cannot save '{path}': the table has no rows; give at least one row of values.");
        writer.Flush();
    }

    private static string QuoteIfNeeded(string name)
    {
        bool needs = name.AsSpan().IndexOfAny(",;\t\"") >= 0
            || name.Trim().Length != name.Length
            || float.TryParse(name, NumberStyle, CultureInfo.InvariantCulture, out _);
        return needs ? "\"" + name.Replace("\"", "\"\"") + "\"" : name;
    }

    /// <summary>Values per block of the parse buffer: blocks are filled in turn and copied once into the table.</summary>
    private const int BlockValues = 1 << 20;

    /// <summary>The longest line read (64 Mi characters): a longer one is not a table's row, and is refused before it fills memory.</summary>
    private const int MaxLineChars = 1 << 26;

    /// <summary>
    /// Parses CSV text; <paramref name="source"/> names the file in messages. Lines are read one at a time and their
    /// values stored as floats in blocks of up to <see cref="BlockValues"/> (no doubling buffer, no strings kept), which are
    /// copied once into the table: the peak is about twice the table's floats, whatever the file's text.
    /// </summary>
    internal static CsvTable Parse(TextReader reader, string source)
    {
        int lineNumber = 0;
        int firstBlankLine = 0; // the first of the blank lines seen since the last non-blank one; 0 if none
        string[]? columns = null;
        char separator = ',';
        var blocks = new List<float[]>();
        int used = 0; // values stored in the last block
        long count = 0; // values stored in all blocks
        var lines = new CsvText.LineReader(reader, MaxLineChars);
        while (lines.Next(out var line))
        {
            lineNumber++;
            if (line.IsWhiteSpace())
            {
                if (firstBlankLine == 0) firstBlankLine = lineNumber;
                continue;
            }
            if (firstBlankLine != 0)
                throw new DiffuseException(
                    $"{source}: line {firstBlankLine} is empty but more lines follow; remove the blank line (blank lines are allowed only at the end of the file).");
            if (line.Length > MaxLineChars)
                throw new DiffuseException($"{source}: line {lineNumber} is longer than {MaxLineChars:N0} characters; is this a CSV table with one row per line?");
            if (columns is null)
            {
                string header = line.ToString();
                separator = DetectSeparator(header);
                columns = ParseHeader(header, separator, source);
                continue;
            }
            if (count + columns.Length > MaxValues - MaxValues % columns.Length)
                throw new DiffuseException(
                    $"{source}: line {lineNumber}: the table has more than {MaxValues} values (2 GB of floats), too many to load at once; split the file.");
            if (blocks.Count == 0 || used + columns.Length > blocks[^1].Length)
            {
                // Blocks double from a small first one up to BlockValues, so a small file needs a small buffer.
                long size = Math.Clamp(count, 1024, BlockValues);
                blocks.Add(new float[Math.Max(size - size % columns.Length, columns.Length)]);
                used = 0;
            }
            ParseRow(line, lineNumber, separator, columns, source, blocks[^1].AsSpan(used, columns.Length));
            used += columns.Length;
            count += columns.Length;
        }

        if (columns is null)
            throw new DiffuseException(
                $"{source}: the file is empty; a CSV table needs a header line of column names followed by lines of numbers.");
        if (count == 0)
            throw new DiffuseException(
                $"{source}: the file has a header but no data rows; add at least one line of numbers below the header.");

        int rows = (int)(count / columns.Length);
        var values = new float[rows, columns.Length];
        var target = System.Runtime.InteropServices.MemoryMarshal.CreateSpan(ref values[0, 0], values.Length);
        int at = 0;
        for (int b = 0; b < blocks.Count; b++)
        {
            int length = b == blocks.Count - 1 ? used : blocks[b].Length;
            blocks[b].AsSpan(0, length).CopyTo(target[at..]);
            at += length;
            blocks[b] = null!; // each block can be collected as soon as it is copied
        }
        return new CsvTable(columns, values);
    }

    private static void ParseRow(ReadOnlySpan<char> line, int lineNumber, char separator, string[] columns, string source, Span<float> row)
    {
        ReadOnlySpan<char> rest = line;
        int fields = rest.Count(separator) + 1;
        if (fields != columns.Length)
            throw new DiffuseException(
                $"{source}: line {lineNumber} has {fields} {Plural(fields, "field")} but the header has {columns.Length} {Plural(columns.Length, "column")}; "
                + $"give every line exactly one value per column, separated by '{Describe(separator)}'.");
        for (int c = 0; c < columns.Length; c++)
        {
            int end = rest.IndexOf(separator);
            ReadOnlySpan<char> field = (end < 0 ? rest : rest[..end]).Trim();
            rest = end < 0 ? default : rest[(end + 1)..];
            if (field.Length >= 2 && field[0] == '"' && field[^1] == '"') field = field[1..^1].Trim();
            if (field.IsEmpty)
                throw new DiffuseException(
                    $"{source}: line {lineNumber}, column {c + 1} ('{columns[c]}') is empty; fill in a number or remove the line (missing values are not supported).");
            bool parsed = float.TryParse(field, NumberStyle, CultureInfo.InvariantCulture, out float value);
            if (!parsed && !IsNonFiniteWord(field))
                throw new DiffuseException(
                    $"{source}: line {lineNumber}, column {c + 1} ('{columns[c]}'): '{Shorten(field)}' is not a number; "
                    + "write numbers with '.' as the decimal point and no thousands separators (e.g. 1.25 or -3e-4), and encode categories as numbers or drop the column.");
            if (!parsed || !float.IsFinite(value))
                throw new DiffuseException(IsNonFiniteWord(field)
                    ? $"{source}: line {lineNumber}, column {c + 1} ('{columns[c]}'): '{Shorten(field)}' is not a finite number; remove or replace rows with NaN or infinite values."
                    : $"{source}: line {lineNumber}, column {c + 1} ('{columns[c]}'): '{Shorten(field)}' is too large for a 32-bit float (beyond ±3.4e38); rescale the column.");
            row[c] = value;
        }
    }

    private static char DetectSeparator(string header)
    {
        bool quoted = false;
        bool semicolon = false, tab = false;
        foreach (char c in header)
        {
            if (c == '"') quoted = !quoted;
            else if (quoted) continue;
            else if (c == ',') return ',';
            else if (c == ';') semicolon = true;
            else if (c == '\t') tab = true;
        }
        return semicolon ? ';' : tab ? '\t' : ',';
    }

    private static string[] ParseHeader(string line, char separator, string source)
    {
        var names = new List<string>();
        var quotedFlags = new List<bool>();
        var name = new StringBuilder();
        int i = 0;
        while (true)
        {
            // One field: optional spaces, then either a quoted name or plain text up to the separator.
            while (i < line.Length && line[i] != separator && char.IsWhiteSpace(line[i])) i++;
            name.Clear();
            bool quoted = i < line.Length && line[i] == '"';
            if (quoted)
            {
                i++;
                while (true)
                {
                    if (i >= line.Length)
                        throw new DiffuseException(
                            $"{source}: line 1, column {names.Count + 1}: the quoted header name has no closing quote; close it with '\"' (write '\"\"' for a quote inside a name).");
                    if (line[i] == '"')
                    {
                        if (i + 1 < line.Length && line[i + 1] == '"') { name.Append('"'); i += 2; continue; }
                        i++;
                        break;
                    }
                    name.Append(line[i++]);
                }
                while (i < line.Length && line[i] != separator && char.IsWhiteSpace(line[i])) i++;
                if (i < line.Length && line[i] != separator)
                    throw new DiffuseException(
                        $"{source}: line 1, column {names.Count + 1}: text follows the closing quote of header name '{name}'; put the separator '{Describe(separator)}' right after the quote.");
            }
            else
            {
                int end = line.IndexOf(separator, i);
                if (end < 0) end = line.Length;
                name.Append(line.AsSpan(i, end - i).Trim());
                i = end;
            }
            names.Add(name.ToString());
            quotedFlags.Add(quoted);
            if (i >= line.Length) break;
            i++; // the separator
        }

        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int c = 0; c < names.Count; c++)
        {
            if (names[c].Length == 0)
                throw new DiffuseException(
                    $"{source}: line 1, column {c + 1}: the header name is empty; give every column a name in the first line.");
            if (!seen.TryAdd(names[c], c + 1))
                throw new DiffuseException(
                    $"{source}: line 1, column {c + 1}: the header name '{names[c]}' repeats column {seen[names[c]]}; give every column a unique name.");
        }
        bool allNumbers = true;
        for (int c = 0; c < names.Count && allNumbers; c++)
            allNumbers = !quotedFlags[c] && float.TryParse(names[c], NumberStyle, CultureInfo.InvariantCulture, out _);
        if (allNumbers)
            throw new DiffuseException(
                $"{source}: line 1 holds numbers, not column names; add a header line of names (e.g. {string.Join(Describe(separator), Enumerable.Range(1, names.Count).Select(k => $"x{k}"))}) as the first line.");
        return names.ToArray();
    }

    /// <summary>Whether the field spells NaN or an infinity as .NET, Python, R or spreadsheets write them.</summary>
    private static bool IsNonFiniteWord(ReadOnlySpan<char> field)
    {
        if (field.Length > 0 && field[0] is '+' or '-') field = field[1..].TrimStart();
        return field.Equals("nan", StringComparison.OrdinalIgnoreCase)
            || field.Equals("inf", StringComparison.OrdinalIgnoreCase)
            || field.Equals("infinity", StringComparison.OrdinalIgnoreCase)
            || field.Equals("∞", StringComparison.Ordinal);
    }

    private static string Shorten(ReadOnlySpan<char> text) =>
        text.Length <= MaxQuotedText ? text.ToString() : string.Concat(text[..MaxQuotedText], "…");

    private static string Describe(char separator) => separator == '\t' ? "\\t" : separator.ToString();

    private static string Plural(int n, string word) => n == 1 ? word : word + "s";
}
