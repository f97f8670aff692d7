using System.Buffers.Binary;
using System.Collections;
using System.Text;
using System.Text.Json;
using Diffuse.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Tests.Checkpoints;

public sealed class SafetensorsTests : IDisposable
{
    readonly string _folder = Path.Combine(Path.GetTempPath(), "diffuse-safetensors-" + Guid.NewGuid().ToString("N"));

    public SafetensorsTests() => Directory.CreateDirectory(_folder);

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    string PathOf(string name) => Path.Combine(_folder, name);

    static Tensor Sample(ScalarType dtype, params long[] shape)
    {
        using var scope = NewDisposeScope();
        Tensor t = dtype switch
        {
            ScalarType.Bool => randn(shape) > 0,
            ScalarType.Byte => randint(0, 256, shape, dtype: ScalarType.Int64).to(dtype),
            ScalarType.Int8 or ScalarType.Int16 or ScalarType.Int32 or ScalarType.Int64 =>
                randint(-100, 100, shape, dtype: ScalarType.Int64).to(dtype),
            _ => randn(shape, dtype: ScalarType.Float64).to(dtype),
        };
        return scope.MoveToOuter(t);
    }

    internal static byte[] BytesOf(Tensor t)
    {
        using var scope = NewDisposeScope();
        return t.detach().cpu().contiguous().bytes.ToArray();
    }

    internal static void AssertSame(Tensor expected, Tensor actual)
    {
        Assert.Equal(expected.dtype, actual.dtype);
        Assert.Equal(expected.shape, actual.shape);
        Assert.Equal(BytesOf(expected), BytesOf(actual));
    }

    static void DisposeAll(IEnumerable<Tensor> tensors)
    {
        foreach (var t in tensors) t.Dispose();
    }

    [Theory]
    [InlineData(ScalarType.Float64, "F64")]
    [InlineData(ScalarType.Float32, "F32")]
    [InlineData(ScalarType.Float16, "F16")]
    [InlineData(ScalarType.BFloat16, "BF16")]
    [InlineData(ScalarType.Int64, "I64")]
    [InlineData(ScalarType.Int32, "I32")]
    [InlineData(ScalarType.Int16, "I16")]
    [InlineData(ScalarType.Int8, "I8")]
    [InlineData(ScalarType.Byte, "U8")]
    [InlineData(ScalarType.Bool, "BOOL")]
    public void RoundTripsEveryDType(ScalarType dtype, string name)
    {
        string path = PathOf("t.safetensors");
        using var matrix = Sample(dtype, 3, 5);
        using var scalar = Sample(dtype);
        using var empty = Sample(dtype, 0, 4);
        var tensors = new Dictionary<string, Tensor> { ["matrix"] = matrix, ["scalar"] = scalar, ["empty"] = empty };
        Safetensors.Save(path, tensors);

        var header = Safetensors.ReadHeader(path);
        Assert.All(header.Entries, e => Assert.Equal(name, e.DType));
        Assert.Equal(Array.Empty<long>(), header.Entries.Single(e => e.Name == "scalar").Shape);
        Assert.Equal(new long[] { 0, 4 }, header.Entries.Single(e => e.Name == "empty").Shape);

        var loaded = Safetensors.Load(path);
        try
        {
            Assert.Equal(3, loaded.Count);
            foreach (var (key, tensor) in tensors) AssertSame(tensor, loaded[key]);
            Assert.Equal(0, loaded["scalar"].dim());
            Assert.All(loaded.Values, t => Assert.Equal(DeviceType.CPU, t.device_type));
        }
        finally { DisposeAll(loaded.Values); }
    }

    [Fact]
    public void MixedDTypesRoundTripAndAreStoredLargestElementFirst()
    {
        string path = PathOf("mixed.safetensors");
        using var a = Sample(ScalarType.Int8, 3);
        using var b = Sample(ScalarType.Float64, 2, 2);
        using var c = Sample(ScalarType.Float16, 5);
        using var d = Sample(ScalarType.Float32, 1, 3);
        var tensors = new Dictionary<string, Tensor> { ["a"] = a, ["b"] = b, ["c"] = c, ["d"] = d };
        Safetensors.Save(path, tensors);

        // Every tensor's data starts at a multiple of its element size.
        Assert.Equal(new[] { "b", "d", "c", "a" }, Safetensors.ReadHeader(path).Entries.Select(e => e.Name));
        var loaded = Safetensors.Load(path);
        try
        {
            foreach (var (key, tensor) in tensors) AssertSame(tensor, loaded[key]);
        }
        finally { DisposeAll(loaded.Values); }
    }

    [Fact]
    public void SavesANonContiguousTensorInRowMajorOrder()
    {
        string path = PathOf("transposed.safetensors");
        using var scope = NewDisposeScope();
        var source = arange(12, dtype: ScalarType.Float32).reshape(3, 4);
        var transposed = source.t();
        Assert.False(transposed.is_contiguous());
        Safetensors.Save(path, new Dictionary<string, Tensor> { ["t"] = transposed });

        var loaded = Safetensors.Load(path)["t"];
        Assert.Equal(new long[] { 4, 3 }, loaded.shape);
        Assert.Equal(new float[] { 0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11 }, loaded.data<float>().ToArray());
        // The input is only read: still valid, still a view of the source.
        Assert.False(transposed.IsInvalid);
        Assert.False(transposed.is_contiguous());
    }

    [Fact]
    public void SmallChunksMoveTheSameBytes()
    {
        string path = PathOf("chunks.safetensors");
        using var scope = NewDisposeScope();
        var big = Sample(ScalarType.Float32, 7, 11);
        var transposed = Sample(ScalarType.Float64, 5, 3).t();
        var bools = Sample(ScalarType.Bool, 13);
        var tensors = new Dictionary<string, Tensor> { ["big"] = big, ["transposed"] = transposed, ["bools"] = bools };
        // 12-byte chunks: not a multiple of 8, so chunk boundaries fall mid-row and a chunk holds one float64.
        Safetensors.Save(path, tensors, null, chunkBytes: 12);
        var viaBigChunks = Safetensors.Load(path);
        var viaSmallChunks = Safetensors.Load(path, chunkBytes: 12);
        foreach (var (key, tensor) in tensors)
        {
            AssertSame(tensor, viaBigChunks[key]);
            AssertSame(tensor, viaSmallChunks[key]);
        }
    }

    [Fact]
    public void HeaderLayoutMatchesTheFormat()
    {
        string path = PathOf("layout.safetensors");
        using var scope = NewDisposeScope();
        var weights = tensor(new float[] { 1.5f, -2f, 3.25f });
        var steps = tensor(new long[] { 7, 8 });
        var flags = tensor(new[] { true, false, true });
        Safetensors.Save(path, new Dictionary<string, Tensor> { ["weights"] = weights, ["steps"] = steps, ["flags"] = flags },
            new Dictionary<string, string> { ["format"] = "pt" });

        byte[] file = File.ReadAllBytes(path);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(file);
        Assert.Equal(0, (8 + (long)n) % 8);
        Assert.True(8 + (long)n <= file.Length);
        string headerText = Encoding.UTF8.GetString(file, 8, (int)n);
        Assert.StartsWith("{", headerText);
        Assert.Equal(headerText.TrimEnd(' ').Length, headerText.TrimEnd().Length); // padding is spaces only
        Assert.True(headerText.Length - headerText.TrimEnd(' ').Length < 8);

        using var json = JsonDocument.Parse(headerText);
        var root = json.RootElement;
        Assert.Equal("pt", root.GetProperty("__metadata__").GetProperty("format").GetString());
        long dataLength = file.Length - 8 - (long)n;
        var ranges = root.EnumerateObject().Where(p => p.Name != "__metadata__")
            .Select(p => (Name: p.Name,
                          DType: p.Value.GetProperty("dtype").GetString(),
                          Shape: p.Value.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray(),
                          Begin: p.Value.GetProperty("data_offsets")[0].GetInt64(),
                          End: p.Value.GetProperty("data_offsets")[1].GetInt64()))
            .OrderBy(r => r.Begin).ToList();
        Assert.Equal(3, ranges.Count);
        long expected = 0;
        foreach (var r in ranges)
        {
            Assert.Equal(expected, r.Begin);
            expected = r.End;
        }
        Assert.Equal(dataLength, expected);

        var w = ranges.Single(r => r.Name == "weights");
        Assert.Equal("F32", w.DType);
        Assert.Equal(new long[] { 3 }, w.Shape);
        int start = 8 + (int)n + (int)w.Begin;
        for (int i = 0; i < 3; i++)
            Assert.Equal(new[] { 1.5f, -2f, 3.25f }[i], BinaryPrimitives.ReadSingleLittleEndian(file.AsSpan(start + 4 * i)));
        var s = ranges.Single(r => r.Name == "steps");
        Assert.Equal("I64", s.DType);
        Assert.Equal(0, s.Begin % 8);
        Assert.Equal(8L, BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan(8 + (int)n + (int)s.Begin + 8)));
        var f = ranges.Single(r => r.Name == "flags");
        Assert.Equal("BOOL", f.DType);
        Assert.Equal(new byte[] { 1, 0, 1 }, file.AsSpan(8 + (int)n + (int)f.Begin, 3).ToArray());
    }

    [Fact]
    public void MetadataRoundTrips()
    {
        string path = PathOf("meta.safetensors");
        using var x = ones(2);
        var metadata = new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["config"] = "{\"channels\": [64, 128], \"name\": \"ünïcode \\\"quoted\\\" <tag>\"}",
            ["empty"] = "",
        };
        Safetensors.Save(path, new Dictionary<string, Tensor> { ["x"] = x }, metadata);
        var header = Safetensors.ReadHeader(path);
        Assert.Equal(metadata.OrderBy(p => p.Key), header.Metadata.OrderBy(p => p.Key));
        Assert.Equal(new[] { new SafetensorsEntry("x", "F32", [2]) }.Select(e => (e.Name, e.DType, string.Join(",", e.Shape))),
            header.Entries.Select(e => (e.Name, e.DType, string.Join(",", e.Shape))));

        Safetensors.Save(path, new Dictionary<string, Tensor> { ["x"] = x });
        Assert.Empty(Safetensors.ReadHeader(path).Metadata);
        Assert.DoesNotContain("__metadata__", File.ReadAllText(path));
    }

    [Fact]
    public void AnEmptyDictionaryMakesAValidFile()
    {
        string path = PathOf("nothing.safetensors");
        Safetensors.Save(path, new Dictionary<string, Tensor>(), new Dictionary<string, string> { ["k"] = "v" });
        Assert.Empty(Safetensors.Load(path));
        Assert.Equal("v", Safetensors.ReadHeader(path).Metadata["k"]);
    }

    [Fact]
    public void LoadedTensorsBelongToTheCallersDisposeScope()
    {
        string path = PathOf("scope.safetensors");
        using (var x = ones(3)) Safetensors.Save(path, new Dictionary<string, Tensor> { ["x"] = x });

        Dictionary<string, Tensor> inner;
        using (NewDisposeScope()) inner = Safetensors.Load(path);
        Assert.True(inner["x"].IsInvalid);

        Dictionary<string, Tensor> kept;
        using (var scope = NewDisposeScope())
        {
            kept = Safetensors.Load(path);
            scope.MoveToOuter(kept.Values);
        }
        Assert.False(kept["x"].IsInvalid);
        Assert.Equal(3f, kept["x"].sum().item<float>());
        DisposeAll(kept.Values);
    }

    // ---- corrupt files ----

    static byte[] FileBytes(string header, int dataBytes, ulong? lengthField = null)
    {
        byte[] json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, lengthField ?? (ulong)json.Length);
        json.CopyTo(bytes, 8);
        return bytes;
    }

    public static TheoryData<string, byte[], string> CorruptFiles => new()
    {
        { "shorter than 8 bytes", [1, 2, 3], "truncated" },
        { "header length beyond the file", FileBytes("{}", 0, lengthField: 1000), "truncated" },
        { "huge header length", FileBytes("{}", 0, lengthField: ulong.MaxValue), "truncated" },
        { "zero header length", FileBytes("", 0), "not a valid safetensors file" },
        { "invalid JSON", FileBytes("{\"x\": {\"dtype\": \"F32\",", 0), "not a valid safetensors file" },
        { "not an object", FileBytes("[1, 2]  ", 0), "not a valid safetensors file" },
        { "unknown dtype", FileBytes("""{"x": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}""", 4), "F99" },
        { "unsupported dtype", FileBytes("""{"x": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}""", 8), "C64" },
        { "offsets out of range", FileBytes("""{"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}""", 8), "truncated" },
        { "offsets inconsistent with shape", FileBytes("""{"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}""", 8), "needs 12 bytes" },
        { "offsets reversed", FileBytes("""{"x": {"dtype": "F32", "shape": [0], "data_offsets": [4, 0]}}""", 4), "not a valid safetensors file" },
        { "negative shape", FileBytes("""{"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}""", 4), "not a valid safetensors file" },
        { "missing shape", FileBytes("""{"x": {"dtype": "F32", "data_offsets": [0, 4]}}""", 4), "not a valid safetensors file" },
        { "overlapping tensors", FileBytes("""{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}""", 8), "overlaps" },
        { "gap between tensors", FileBytes("""{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}""", 8), "gap" },
        { "bytes after the last tensor", FileBytes("""{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}""", 8), "after the last tensor" },
        { "duplicate name", FileBytes("""{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}""", 2), "twice" },
        { "non-string metadata", FileBytes("""{"__metadata__": {"epoch": 3}}""", 0), "not a string" },
    };

    [Theory]
    [MemberData(nameof(CorruptFiles))]
    public void CorruptFilesThrowNamingTheFile(string description, byte[] bytes, string expected)
    {
        string path = PathOf("corrupt.safetensors");
        File.WriteAllBytes(path, bytes);
        var onLoad = Assert.Throws<DiffuseException>(() => Safetensors.Load(path));
        var onHeader = Assert.Throws<DiffuseException>(() => Safetensors.ReadHeader(path));
        foreach (var e in new[] { onLoad, onHeader })
        {
            Assert.True(e.Message.Contains(path), $"{description}: {e.Message}");
            Assert.True(e.Message.Contains(expected), $"{description}: {e.Message}");
            Assert.True(e.Message.Contains("not a valid safetensors file") || e.Message.Contains("truncated or corrupt"), $"{description}: {e.Message}");
        }
    }

    [Fact]
    public void ATruncatedSavedFileIsReportedAsTruncated()
    {
        string path = PathOf("cut.safetensors");
        using (var x = ones(100)) Safetensors.Save(path, new Dictionary<string, Tensor> { ["x"] = x });
        byte[] whole = File.ReadAllBytes(path);
        File.WriteAllBytes(path, whole[..^10]);
        var e = Assert.Throws<DiffuseException>(() => Safetensors.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void AMissingFileThrowsNamingIt()
    {
        string path = PathOf("absent.safetensors");
        var e = Assert.Throws<DiffuseException>(() => Safetensors.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("does not exist", e.Message);
        Assert.Contains(path, Assert.Throws<DiffuseException>(() => Safetensors.ReadHeader(path)).Message);
    }

    // ---- atomic save ----

    sealed class ThrowingDictionary(Tensor first) : IReadOnlyDictionary<string, Tensor>
    {
        public IEnumerator<KeyValuePair<string, Tensor>> GetEnumerator()
        {
            yield return new("first", first);
            throw new InvalidOperationException("enumeration failed");
        }
        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
        public int Count => 2;
        public bool ContainsKey(string key) => key == "first";
        public bool TryGetValue(string key, out Tensor value) { value = first; return key == "first"; }
        public Tensor this[string key] => first;
        public IEnumerable<string> Keys => ["first"];
        public IEnumerable<Tensor> Values => [first];
    }

    [Fact]
    public void AFailedSaveKeepsTheExistingFile()
    {
        string path = PathOf("keep.safetensors");
        using var x = ones(4);
        Safetensors.Save(path, new Dictionary<string, Tensor> { ["x"] = x });
        byte[] before = File.ReadAllBytes(path);

        Assert.Throws<InvalidOperationException>(() => Safetensors.Save(path, new ThrowingDictionary(x)));
        Assert.Equal(before, File.ReadAllBytes(path));

        using var complex = randn(new long[] { 2 }, dtype: ScalarType.ComplexFloat32);
        var e = Assert.Throws<DiffuseException>(() => Safetensors.Save(path, new Dictionary<string, Tensor> { ["x"] = x, ["z"] = complex }));
        Assert.Contains("'z'", e.Message);
        Assert.Contains("ComplexFloat32", e.Message);
        Assert.Equal(before, File.ReadAllBytes(path));

        var reserved = Assert.Throws<DiffuseException>(() => Safetensors.Save(path, new Dictionary<string, Tensor> { ["__metadata__"] = x }));
        Assert.Contains("reserved", reserved.Message);
        Assert.Equal(before, File.ReadAllBytes(path));

        Assert.Equal(new[] { path }, Directory.GetFiles(_folder)); // no temporary files left behind
    }

    [Fact]
    public void SaveReplacesAnExistingFile()
    {
        string path = PathOf("replace.safetensors");
        using var x = ones(4);
        using var y = zeros(2, 2, dtype: ScalarType.Int32);
        Safetensors.Save(path, new Dictionary<string, Tensor> { ["x"] = x });
        Safetensors.Save(path, new Dictionary<string, Tensor> { ["y"] = y });
        var loaded = Safetensors.Load(path);
        Assert.Equal(new[] { "y" }, loaded.Keys);
        AssertSame(y, loaded["y"]);
        DisposeAll(loaded.Values);
    }
}
