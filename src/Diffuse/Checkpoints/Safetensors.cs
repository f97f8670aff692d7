using System.Buffers.Binary;
using System.Text.Encodings.Web;
using System.Text.Json;
using Diffuse.IO;
using Microsoft.Win32.SafeHandles;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Checkpoints;

/// <summary>One tensor described by a safetensors header.</summary>
/// <param name="Name">The tensor's name (a state-dict key such as <c>blocks.0.linear.weight</c>).</param>
/// <param name="DType">The safetensors dtype name: F64, F32, F16, BF16, I64, I32, I16, I8, U8 or BOOL.</param>
/// <param name="Shape">The tensor's shape; empty for a 0-d scalar.</param>
public sealed record SafetensorsEntry(string Name, string DType, long[] Shape);

/// <summary>What a safetensors file holds, read without its tensor data.</summary>
/// <param name="Entries">The tensors, in the order their data is stored in the file.</param>
/// <param name="Metadata">The free-form string metadata (<c>__metadata__</c>); empty when the file has none.</param>
public sealed record SafetensorsHeader(IReadOnlyList<SafetensorsEntry> Entries, IReadOnlyDictionary<string, string> Metadata);

/// <summary>
/// Reads and writes the safetensors format (https://github.com/huggingface/safetensors) without third-party code:
/// an 8-byte little-endian header length N, N bytes of UTF-8 JSON naming each tensor's dtype, shape and byte range,
/// then the tensors' bytes, little-endian, row-major and contiguous. Files written here load in PyTorch's
/// <c>safetensors</c> package, and files written by it load here (for the dtypes listed on <see cref="SafetensorsEntry.DType"/>).
/// </summary>
/// <remarks>
/// Tensor data moves between the file and the tensors' own memory without intermediate buffers: saving a contiguous
/// CPU tensor writes its memory directly, and loading reads straight into the new tensor's memory. Only a tensor
/// that is not contiguous or not on the CPU is copied once, one tensor at a time, while it is written.
/// </remarks>
public static class Safetensors
{
    /// <summary>The header key that holds the string metadata rather than a tensor.</summary>
    const string MetadataKey = "__metadata__";

    /// <summary>The largest header accepted, as in the reference implementation: a larger one means a corrupt file.</summary>
    const long MaxHeaderBytes = 100_000_000;

    /// <summary>The most bytes moved in one read or write call (a <see cref="Span{T}"/> holds at most 2 GiB).</summary>
    const long DefaultChunkBytes = 1L << 30;

    /// <summary>The dtypes Diffuse reads and writes, by their safetensors names.</summary>
    static readonly (string Name, ScalarType Type, int Size)[] DTypes =
    [
        ("F64", ScalarType.Float64, 8),
        ("F32", ScalarType.Float32, 4),
        ("F16", ScalarType.Float16, 2),
        ("BF16", ScalarType.BFloat16, 2),
        ("I64", ScalarType.Int64, 8),
        ("I32", ScalarType.Int32, 4),
        ("I16", ScalarType.Int16, 2),
        ("I8", ScalarType.Int8, 1),
        ("U8", ScalarType.Byte, 1),
        ("BOOL", ScalarType.Bool, 1),
    ];

    static string SupportedDTypes => string.Join(", ", DTypes.Select(d => d.Name));

    /// <summary>
    /// Writes <paramref name="tensors"/> and <paramref name="metadata"/> to <paramref name="path"/> atomically: the
    /// file is complete or untouched, never half-written, even when this throws.
    /// </summary>
    /// <param name="path">The file to write; its folder is created if needed, an existing file is replaced.</param>
    /// <param name="tensors">
    /// The tensors by name. They may be on any device, non-contiguous (a transposed view, say) and may require
    /// gradients; their dtype must be one of F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL. They are only read:
    /// the caller keeps owning them.
    /// </param>
    /// <param name="metadata">Optional free-form string pairs stored as <c>__metadata__</c>.</param>
    /// <exception cref="DiffuseException">A name is empty or reserved, or a tensor's dtype cannot be stored.</exception>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        Save(path, tensors, metadata, DefaultChunkBytes);

    /// <summary><see cref="Save(string, IReadOnlyDictionary{string, Tensor}, IReadOnlyDictionary{string, string}?)"/> moving at most <paramref name="chunkBytes"/> per write (tests use small chunks).</summary>
    internal static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata, long chunkBytes)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        RequireLittleEndian();

        // Plan everything (names, dtypes, byte ranges, header) before touching the disk.
        var planned = new List<(string Name, Tensor Tensor, string DType, int Size, long[] Shape)>();
        foreach (var (name, tensor) in tensors)
        {
            if (string.IsNullOrEmpty(name))
                throw new DiffuseException($"Cannot save '{path}': a tensor has an empty name; give every tensor a non-empty name.");
            if (name == MetadataKey)
                throw new DiffuseException($"Cannot save '{path}': '{MetadataKey}' is reserved for metadata in safetensors files and cannot name a tensor; rename that tensor.");
            if (tensor is null || tensor.IsInvalid)
                throw new ArgumentException($"Tensor '{name}' is null or disposed.", nameof(tensors));
            var dtype = DTypes.FirstOrDefault(d => d.Type == tensor.dtype);
            if (dtype.Name is null)
                throw new DiffuseException(
                    $"Cannot save '{path}': tensor '{name}' has dtype {tensor.dtype}, which safetensors files here cannot hold; " +
                    $"convert it to one of {string.Join(", ", DTypes.Select(d => d.Type))} first.");
            planned.Add((name, tensor, dtype.Name, dtype.Size, tensor.shape));
        }
        // Largest elements first, then by name, as the reference writer does: every tensor's data then starts at a
        // multiple of its element size, which lets readers that map the file use it in place.
        planned.Sort((a, b) => a.Size != b.Size ? b.Size.CompareTo(a.Size) : string.CompareOrdinal(a.Name, b.Name));

        var ranges = new long[planned.Count + 1];
        for (int i = 0; i < planned.Count; i++)
            ranges[i + 1] = checked(ranges[i] + ElementCount(planned[i].Shape) * planned[i].Size);

        byte[] header = EncodeHeader(planned.Select((p, i) => (p.Name, p.DType, p.Shape, ranges[i], ranges[i + 1])), metadata);

        AtomicFile.Write(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            stream.Write(length);
            stream.Write(header);
            foreach (var p in planned)
            {
                // A scope per tensor: a copy made for a non-contiguous or non-CPU tensor is freed as soon as it is written.
                using var scope = torch.NewDisposeScope();
                var data = p.Tensor.detach().cpu().contiguous();
                ForEachChunk(data, chunkBytes, (chunk, _) => stream.Write(chunk));
            }
        });
    }

    /// <summary>Reads every tensor in a safetensors file.</summary>
    /// <param name="path">The file to read.</param>
    /// <returns>
    /// New contiguous CPU tensors by name, each with its own memory (nothing aliases the file). The caller owns them:
    /// like the result of any TorchSharp operation they join the caller's current dispose scope, if one is open
    /// (move them out with <see cref="DisposeScope.MoveToOuter(IEnumerable{IDisposable})"/> to keep them longer),
    /// and otherwise must be disposed by the caller. On an error nothing is left allocated.
    /// </returns>
    /// <exception cref="DiffuseException">The file is missing, unreadable, truncated or not a valid safetensors file.</exception>
    public static Dictionary<string, Tensor> Load(string path) => Load(path, DefaultChunkBytes);

    /// <summary><see cref="Load(string)"/> moving at most <paramref name="chunkBytes"/> per read (tests use small chunks).</summary>
    internal static Dictionary<string, Tensor> Load(string path, long chunkBytes)
    {
        RequireLittleEndian();
        using var file = Open(path);
        var parsed = ParseHeader(path, file);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        // Tensors made here are disposed by this scope if anything fails, and handed to the caller's scope otherwise.
        using var scope = torch.NewDisposeScope();
        foreach (var entry in parsed.Entries)
        {
            var tensor = torch.empty(entry.Shape, entry.Type);
            long begin = parsed.DataStart + entry.Begin;
            ForEachChunk(tensor, chunkBytes, (chunk, offset) => ReadExactly(path, file, chunk, begin + offset));
            result.Add(entry.Name, tensor);
        }
        scope.MoveToOuter(result.Values);
        return result;
    }

    /// <summary>Reads the names, dtypes, shapes and metadata of a safetensors file without reading its tensor data.</summary>
    /// <param name="path">The file to read.</param>
    /// <exception cref="DiffuseException">The file is missing, unreadable, truncated or not a valid safetensors file.</exception>
    public static SafetensorsHeader ReadHeader(string path)
    {
        using var file = Open(path);
        var parsed = ParseHeader(path, file);
        return new SafetensorsHeader(
            parsed.Entries.Select(e => new SafetensorsEntry(e.Name, e.DType, e.Shape)).ToList(),
            parsed.Metadata);
    }

    // ---- header encoding ----

    static byte[] EncodeHeader(IEnumerable<(string Name, string DType, long[] Shape, long Begin, long End)> entries, IReadOnlyDictionary<string, string>? metadata)
    {
        var buffer = new MemoryStream();
        // Relaxed escaping keeps non-ASCII names readable; the output is still plain, valid JSON.
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject(MetadataKey);
                foreach (var (key, value) in metadata)
                {
                    if (key is null || value is null) throw new ArgumentException("Metadata keys and values must not be null.", nameof(metadata));
                    json.WriteString(key, value);
                }
                json.WriteEndObject();
            }
            foreach (var (name, dtype, shape, begin, end) in entries)
            {
                json.WriteStartObject(name);
                json.WriteString("dtype", dtype);
                json.WriteStartArray("shape");
                foreach (long dim in shape) json.WriteNumberValue(dim);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(begin);
                json.WriteNumberValue(end);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        // Pad with spaces so the data starts at a multiple of 8 bytes (8-byte length + padded header).
        while (buffer.Length % 8 != 0) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }

    // ---- header parsing ----

    sealed record ParsedEntry(string Name, string DType, ScalarType Type, long[] Shape, long Begin, long End);

    sealed record ParsedHeader(List<ParsedEntry> Entries, Dictionary<string, string> Metadata, long DataStart);

    static SafeFileHandle Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
            throw new DiffuseException($"Checkpoint file '{path}' does not exist; check the path.");
        try
        {
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.SequentialScan);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DiffuseException($"Cannot open checkpoint file '{path}': {e.Message}", e);
        }
    }

    static DiffuseException Invalid(string path, string detail) =>
        new($"'{path}' is not a valid safetensors file: {detail}. Re-create it with Diffuse or re-download it.");

    static DiffuseException Truncated(string path, string detail) =>
        new($"'{path}' is truncated or corrupt: {detail}. Re-create it with Diffuse or re-download it.");

    static ParsedHeader ParseHeader(string path, SafeFileHandle file)
    {
        long fileLength = RandomAccess.GetLength(file);
        if (fileLength < 8)
            throw Truncated(path, $"it has {fileLength} bytes, fewer than the 8-byte header length every safetensors file starts with");
        Span<byte> lengthBytes = stackalloc byte[8];
        ReadExactly(path, file, lengthBytes, 0);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > (ulong)(fileLength - 8))
            throw Truncated(path, $"its header claims {headerLength} bytes but only {fileLength - 8} bytes follow the length field");
        if (headerLength == 0 || headerLength > MaxHeaderBytes)
            throw Invalid(path, $"its header length {headerLength} is outside the valid range 1..{MaxHeaderBytes}");

        var headerBytes = new byte[headerLength];
        ReadExactly(path, file, headerBytes, 8);
        if (headerBytes[0] != (byte)'{')
            throw Invalid(path, "its header does not start with a JSON object");
        if (!System.Text.Unicode.Utf8.IsValid(headerBytes))
            throw Invalid(path, "its header is not valid UTF-8");

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(headerBytes);
        }
        catch (JsonException e)
        {
            throw Invalid(path, $"its header is not valid JSON ({e.Message})");
        }

        long dataStart = 8 + (long)headerLength;
        long dataLength = fileLength - dataStart;
        var entries = new List<ParsedEntry>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw Invalid(path, "its header is not a JSON object");
            foreach (var property in root.EnumerateObject())
            {
                if (!seen.Add(property.Name))
                    throw Invalid(path, $"its header names '{property.Name}' twice");
                if (property.Name == MetadataKey)
                    ReadMetadata(path, property.Value, metadata);
                else
                    entries.Add(ReadEntry(path, property.Name, property.Value));
            }
        }

        // The tensors' byte ranges must lie in the data section, tile it exactly and never overlap.
        entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long expected = 0;
        foreach (var e in entries)
        {
            if (e.End > dataLength)
                throw Truncated(path, $"tensor '{e.Name}' needs bytes {e.Begin}..{e.End} of the data but the data has only {dataLength} bytes");
            if (e.Begin < expected)
                throw Invalid(path, $"the data of tensor '{e.Name}' (bytes {e.Begin}..{e.End}) overlaps another tensor's");
            if (e.Begin > expected)
                throw Invalid(path, $"the data has a gap at bytes {expected}..{e.Begin} that belongs to no tensor");
            expected = e.End;
        }
        if (expected != dataLength)
            throw Invalid(path, $"the data has {dataLength - expected} bytes after the last tensor that belong to no tensor");
        return new ParsedHeader(entries, metadata, dataStart);
    }

    static void ReadMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw Invalid(path, $"its '{MetadataKey}' is not a JSON object of strings");
        foreach (var pair in value.EnumerateObject())
        {
            if (pair.Value.ValueKind != JsonValueKind.String)
                throw Invalid(path, $"metadata '{pair.Name}' is not a string");
            if (!metadata.TryAdd(pair.Name, pair.Value.GetString()!))
                throw Invalid(path, $"its metadata names '{pair.Name}' twice");
        }
    }

    static ParsedEntry ReadEntry(string path, string name, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw Invalid(path, $"the header entry for tensor '{name}' is not a JSON object");
        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw Invalid(path, $"tensor '{name}' has no dtype");
        string dtypeName = dtypeElement.GetString()!;
        var dtype = DTypes.FirstOrDefault(d => d.Name == dtypeName);
        if (dtype.Name is null)
            throw Invalid(path, $"tensor '{name}' has dtype '{dtypeName}', which is unknown or unsupported (Diffuse reads {SupportedDTypes})");

        long[] shape = ReadIntegers(path, name, value, "shape", null);
        long[] offsets = ReadIntegers(path, name, value, "data_offsets", 2);
        long begin = offsets[0], end = offsets[1];
        if (end < begin)
            throw Invalid(path, $"tensor '{name}' has data_offsets [{begin}, {end}] that end before they begin");
        long bytes;
        try
        {
            bytes = checked(ElementCount(shape) * dtype.Size);
        }
        catch (OverflowException)
        {
            throw Invalid(path, $"tensor '{name}' has an impossibly large shape [{string.Join(", ", shape)}]");
        }
        if (end - begin != bytes)
            throw Invalid(path,
                $"tensor '{name}' ({dtypeName}, shape [{string.Join(", ", shape)}]) needs {bytes} bytes but its data_offsets [{begin}, {end}] span {end - begin}");
        return new ParsedEntry(name, dtypeName, dtype.Type, shape, begin, end);
    }

    static long[] ReadIntegers(string path, string name, JsonElement entry, string field, int? count)
    {
        if (!entry.TryGetProperty(field, out var array) || array.ValueKind != JsonValueKind.Array)
            throw Invalid(path, $"tensor '{name}' has no {field} array");
        var values = new List<long>();
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long v) || v < 0)
                throw Invalid(path, $"tensor '{name}' has a {field} entry that is not a non-negative integer: {item.GetRawText()}");
            values.Add(v);
        }
        if (count is int n && values.Count != n)
            throw Invalid(path, $"tensor '{name}' has {values.Count} {field} values instead of {n}");
        return values.ToArray();
    }

    // ---- data ----

    static long ElementCount(long[] shape)
    {
        long count = 1;
        foreach (long dim in shape) count = checked(count * dim);
        return count;
    }

    delegate void ChunkAction(Span<byte> chunk, long offset);

    /// <summary>
    /// Calls <paramref name="action"/> on the memory of a contiguous CPU tensor in pieces of at most
    /// <paramref name="chunkBytes"/> bytes (whole elements), with each piece's byte offset in the tensor.
    /// </summary>
    static void ForEachChunk(Tensor tensor, long chunkBytes, ChunkAction action)
    {
        long count = tensor.numel();
        if (count == 0) return;
        long size = tensor.element_size();
        if (count * size <= chunkBytes)
        {
            action(tensor.bytes, 0);
            return;
        }
        long perChunk = Math.Max(1, chunkBytes / size);
        using var scope = torch.NewDisposeScope();
        var flat = tensor.reshape(-1); // a view: the tensor is contiguous
        for (long start = 0; start < count; start += perChunk)
        {
            using var piece = flat.narrow(0, start, Math.Min(perChunk, count - start));
            action(piece.bytes, start * size);
        }
    }

    static void ReadExactly(string path, SafeFileHandle file, Span<byte> destination, long offset)
    {
        try
        {
            while (!destination.IsEmpty)
            {
                int read = RandomAccess.Read(file, destination, offset);
                if (read == 0)
                    throw Truncated(path, $"it ended at byte {offset} while more data was expected (was it changed while being read?)");
                destination = destination[read..];
                offset += read;
            }
        }
        catch (IOException e)
        {
            throw new DiffuseException($"Cannot read checkpoint file '{path}': {e.Message}", e);
        }
    }

    static void RequireLittleEndian()
    {
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("Safetensors I/O needs a little-endian machine.");
    }
}
