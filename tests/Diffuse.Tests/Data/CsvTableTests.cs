using Diffuse.Data;
using static TorchSharp.torch;

namespace Diffuse.Tests.Data;

public sealed class CsvTableTests : IDisposable
{
    private readonly TempFolder folder = new();

    public void Dispose() => folder.Dispose();

    [Fact]
    public void SaveThenLoadRoundTripsNamesAndBitExactValues()
    {
        string[] columns = ["x", "a,b", "say \"hi\"", "1", " padded "];
        var rng = new Random(3);
        var values = new float[50, columns.Length];
        for (int r = 0; r < 50; r++)
            for (int c = 0; c < columns.Length; c++)
                values[r, c] = (float)((rng.NextDouble() - 0.5) * Math.Pow(10, rng.Next(-30, 30)));
        values[0, 0] = -0f;
        values[1, 1] = float.MaxValue;
        values[2, 2] = float.Epsilon;
        string path = folder.File("sub/table.csv");

        CsvTable.Save(path, columns, values);
        var table = CsvTable.Load(path);

        Assert.Equal(columns, table.Columns);
        Assert.Equal(50, table.Rows);
        for (int r = 0; r < 50; r++)
            for (int c = 0; c < columns.Length; c++)
                Assert.Equal(BitConverter.SingleToInt32Bits(values[r, c]), BitConverter.SingleToInt32Bits(table.Values[r, c]));
        Assert.Single(Directory.GetFiles(folder.File("sub")));
    }

    [Fact]
    public void ToTensorIsFloat32RowsByColumnsAndIndependentOfTheTable()
    {
        string path = folder.Write("t.csv", "x,y,z\n1,2,3\n4,5,6\n");
        var table = CsvTable.Load(path);
        using var t = table.ToTensor();
        Assert.Equal([2L, 3L], t.shape);
        Assert.Equal(ScalarType.Float32, t.dtype);
        Assert.Equal([1f, 2f, 3f, 4f, 5f, 6f], t.data<float>().ToArray());
        table.Values[0, 0] = 99f;
        Assert.Equal(1f, t[0, 0].item<float>());
    }

    [Fact]
    public void LoadAcceptsCrlfBomSpacesQuotedNamesQuotedNumbersAndTrailingBlankLines()
    {
        string path = folder.File("t.csv");
        File.WriteAllText(path, "\"first, name\" , second\r\n 1.5 , -2e3\r\n\"3\",.25\r\n\r\n   \r\n", new System.Text.UTF8Encoding(true));
        var table = CsvTable.Load(path);
        Assert.Equal(["first, name", "second"], table.Columns);
        Assert.Equal(new float[,] { { 1.5f, -2000f }, { 3f, 0.25f } }, table.Values);
    }

    [Theory]
    [InlineData("a;b\n1;2\n3.5;4\n")]
    [InlineData("a\tb\n1\t2\n3.5\t4\n")]
    public void LoadDetectsSemicolonAndTabSeparators(string text)
    {
        var table = CsvTable.Load(folder.Write("t.csv", text));
        Assert.Equal(["a", "b"], table.Columns);
        Assert.Equal(new float[,] { { 1f, 2f }, { 3.5f, 4f } }, table.Values);
    }

    [Fact]
    public void LoadReadsASingleColumn()
    {
        var table = CsvTable.Load(folder.Write("t.csv", "value\n1\n2\n"));
        Assert.Equal(["value"], table.Columns);
        Assert.Equal(new float[,] { { 1f }, { 2f } }, table.Values);
    }

    [Fact]
    public void LoadReadsALargeFile()
    {
        const int rows = 100_000;
        var values = new float[rows, 4];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < 4; c++)
                values[r, c] = r * 0.25f - c;
        string path = folder.File("large.csv");
        CsvTable.Save(path, ["a", "b", "c", "d"], values);
        var table = CsvTable.Load(path);
        Assert.Equal(rows, table.Rows);
        Assert.Equal(values, table.Values);
    }

    [Fact]
    public void MissingFile()
    {
        string path = folder.File("nope.csv");
        var e = Assert.Throws<DiffuseException>(() => CsvTable.Load(path));
        Assert.StartsWith($"CSV file '{path}' does not exist: check the path", e.Message);
    }

    [Fact]
    public void FolderInsteadOfFile()
    {
        var e = Assert.Throws<DiffuseException>(() => CsvTable.Load(folder.Path));
        Assert.Equal($"'{folder.Path}' is a folder, not a CSV file: give the path of the file itself.", e.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("\n\n  \n")]
    public void EmptyFile(string text)
    {
        string path = folder.Write("empty.csv", text);
        var e = Assert.Throws<DiffuseException>(() => CsvTable.Load(path));
        Assert.Equal($"{path}: the file is empty; a CSV table needs a header line of column names followed by lines of numbers.", e.Message);
    }

    [Fact]
    public void HeaderOnly()
    {
        string path = folder.Write("header.csv", "x,y\n\n");
        var e = Assert.Throws<DiffuseException>(() => CsvTable.Load(path));
        Assert.Equal($"{path}: the file has a header but no data rows; add at least one line of numbers below the header.", e.Message);
    }

    [Theory]
    [InlineData("x,y\n1,2\n3,4,5\n", 3, 3)]
    [InlineData("x,y\n1,2\n3\n", 3, 1)]
    [InlineData("x,y\n1,2,\n", 2, 3)]
    public void RowWithWrongFieldCount(string text, int line, int fields)
    {
        string path = folder.Write("count.csv", text);
        var e = Assert.Throws<DiffuseException>(() => CsvTable.Load(path));
        Assert.StartsWith($"{path}: line {line} has {fields} field", e.Message);
        Assert.Contains("but the header has 2 columns; give every line exactly one value per column, separated by ','.", e.Message);
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("1,5")]
    [InlineData("1 000")]
    [InlineData("0x10")]
    public void NonNumericField(string field)
    {
        string path = folder.Write("text.csv", $"x;y\n1;2\n3;{field}\n");
        var e = Assert.Throws<DiffuseException>(() => CsvTable.Load(path));
        Assert.StartsWith($"{path}: line 3, column 2 ('y'): '{field}' is not a number; write numbers with '.' as the decimal point", e.Message);
    }

    [Theory]
    [InlineData("NaN")]
    [InlineData("nan")]
    [InlineData("Infinity")]
    [InlineData("-Infinity")]
    [InlineData("-inf")]
    [InlineData("+INF")]
    public void NonFiniteField(string field)
    {
        string path = folder.Write("nan.csv", $"x,y,z\n1,2,3\n4,5,6\n7,8,{field}\n");
        var e = Assert.Throws<DiffuseException>(() => CsvTable.Load(path));
        Assert.Equal($"{path}: line 4, column 3 ('z'): '{field}' is not a finite number; remove or replace rows with NaN or infinite values.", e.Message);
    }

    [Fact]
    public void FieldTooLargeForFloat32()
    {
        string path = folder.Write("big.csv", "x,y\n1,1e39\n");
        var e = Assert.Throws<DiffuseException>(() => CsvTable.Load(path));
        Assert.Equal($"{path}: line 2, column 2 ('y'): '1e39' is too large for a 32-bit float (beyond ±3.4e38); rescale the column.", e.Message);
    }

    [Theory]
    [InlineData("x,y\n1,2\n,4\n", 3, 1, "x")]
    [InlineData("x,y\n1,  \n", 2, 2, "y")]
    [InlineData("x,y\n1,\"\"\n", 2, 2, "y")]
    public void EmptyField(string text, int line, int column, string name)
    {
        string path = folder.Write("hole.csv", text);
        var e = Assert.Throws<DiffuseException>(() => CsvTable.Load(path));
        Assert.Equal($"{path}: line {line}, column {column} ('{name}') is empty; fill in a number or remove the line (missing values are not supported).", e.Message);
    }

    [Theory]
    [InlineData("x,y\n1,2\n\n3,4\n", 3)]
    [InlineData("x,y\n1,2\n \n\n3,4\n", 3)]
    [InlineData("x,y\n\n1,2\n", 2)]
    [InlineData("\nx,y\n1,2\n", 1)]
    public void EmptyLineInTheMiddle(string text, int line)
    {
        string path = folder.Write("gap.csv", text);
        var e = Assert.Throws<DiffuseException>(() => CsvTable.Load(path));
        Assert.Equal($"{path}: line {line} is empty but more lines follow; remove the blank line (blank lines are allowed only at the end of the file).", e.Message);
    }

    [Fact]
    public void DuplicateHeaderName()
    {
        string path = folder.Write("dup.csv", "x,y,x\n1,2,3\n");
        var e = Assert.Throws<DiffuseException>(() => CsvTable.Load(path));
        Assert.Equal($"{path}: line 1, column 3: the header name 'x' repeats column 1; give every column a unique name.", e.Message);
    }

    [Theory]
    [InlineData("x,,z\n1,2,3\n")]
    [InlineData("x, ,z\n1,2,3\n")]
    [InlineData("x,\"\",z\n1,2,3\n")]
    public void EmptyHeaderName(string text)
    {
        string path = folder.Write("noname.csv", text);
        var e = Assert.Throws<DiffuseException>(() => CsvTable.Load(path));
        Assert.Equal($"{path}: line 1, column 2: the header name is empty; give every column a name in the first line.", e.Message);
    }

    [Fact]
    public void MissingHeader()
    {
        string path = folder.Write("noheader.csv", "1.5,2\n3,4\n");
        var e = Assert.Throws<DiffuseException>(() => CsvTable.Load(path));
        Assert.Equal($"{path}: line 1 holds numbers, not column names; add a header line of names (e.g. x1,x2) as the first line.", e.Message);
    }

    [Fact]
    public void UnterminatedQuoteInHeader()
    {
        string path = folder.Write("quote.csv", "x,\"y\n1,2\n");
        var e = Assert.Throws<DiffuseException>(() => CsvTable.Load(path));
        Assert.StartsWith($"{path}: line 1, column 2: the quoted header name has no closing quote", e.Message);
    }

    [Fact]
    public void SaveRejectsNonFiniteValuesAndKeepsTheOldFile()
    {
        string path = folder.Write("keep.csv", "old\n1\n");
        var e = Assert.Throws<DiffuseException>(() =>
            CsvTable.Save(path, ["x", "y"], new float[,] { { 1f, 2f }, { 3f, float.NaN } }));
        Assert.Equal($"Cannot save '{path}': row 2, column 2 ('y') is NaN; CSV tables hold finite numbers only, so remove or replace that value.", e.Message);
        Assert.Equal("old\n1\n", File.ReadAllText(path));
    }

    [Fact]
    public void SaveRejectsDuplicateAndEmptyNames()
    {
        string path = folder.File("names.csv");
        var duplicate = Assert.Throws<DiffuseException>(() => CsvTable.Save(path, ["x", "x"], new float[1, 2]));
        Assert.Equal($"Cannot save '{path}': column 2 has the name 'x' of column 1; give every column a unique name.", duplicate.Message);
        var empty = Assert.Throws<DiffuseException>(() => CsvTable.Save(path, ["x", " "], new float[1, 2]));
        Assert.Equal($"Cannot save '{path}': column 2 has an empty name; give every column a name.", empty.Message);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void SaveRejectsAnEmptyTable()
    {
        string path = folder.File("none.csv");
        var e = Assert.Throws<DiffuseException>(() => CsvTable.Save(path, ["x"], new float[0, 1]));
        Assert.Equal($"Cannot save '{path}': the table has no rows; give at least one row of values.", e.Message);
        Assert.Throws<ArgumentException>(() => CsvTable.Save(path, ["x"], new float[1, 2]));
    }
}
