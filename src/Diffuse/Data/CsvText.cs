using System.Buffers;
using System.Text.Unicode;

namespace Diffuse.Data;

/// <summary>Reading the text of a CSV file: lines without a string each, and where invalid UTF-8 is.</summary>
internal static class CsvText
{
    /// <summary>
    /// The lines of a text as spans of one reusable buffer (ending at "\n", "\r\n" or "\r"), so that reading a large
    /// file allocates no string per line. A span is valid until the next call.
    /// </summary>
    internal sealed class LineReader(TextReader reader, int maxLineChars)
    {
        private char[] _buffer = new char[1 << 16];
        private int _start, _end;
        private bool _done, _skipNewline;

        public bool Next(out ReadOnlySpan<char> line)
        {
            while (true)
            {
                var pending = _buffer.AsSpan(_start, _end - _start);
                if (_skipNewline && pending.Length > 0)
                {
                    _skipNewline = false;
                    if (pending[0] == '\n')
                    {
                        _start++;
                        continue;
                    }
                }
                int at = pending.IndexOfAny('\n', '\r');
                if (at >= 0)
                {
                    line = pending[..at];
                    _skipNewline = pending[at] == '\r';
                    _start += at + 1;
                    return true;
                }
                if (_done)
                {
                    line = pending;
                    _start = _end;
                    return pending.Length > 0;
                }
                // No line end in the buffer: keep the partial line, make room (a line longer than the limit grows it
                // only up to the limit, then is returned whole for the caller to refuse), and read more.
                pending.CopyTo(_buffer);
                _end = pending.Length;
                _start = 0;
                if (_end == _buffer.Length)
                {
                    if (_buffer.Length > maxLineChars)
                    {
                        line = _buffer;
                        _end = _start = 0;
                        return true;
                    }
                    Array.Resize(ref _buffer, _buffer.Length * 2);
                }
                int read = reader.Read(_buffer, _end, _buffer.Length - _end);
                if (read == 0) _done = true;
                _end += read;
            }
        }
    }

    /// <summary>
    /// Where the first invalid UTF-8 sequence of a file is: its 1-based line, 1-based byte within the line, 0-based byte
    /// offset in the file and its first byte. Reads the file in blocks (only on the error path).
    /// </summary>
    internal static (long Line, long Column, long Offset, byte Value) FindInvalidUtf8(string path)
    {
        using var stream = File.OpenRead(path);
        var bytes = new byte[1 << 16];
        var chars = new char[bytes.Length];
        long line = 1, lineStart = 0, offset = 0;
        int kept = 0; // bytes of an incomplete sequence carried to the next block
        while (true)
        {
            int read = stream.Read(bytes, kept, bytes.Length - kept);
            int length = kept + read;
            bool final = read == 0;
            var span = bytes.AsSpan(0, length);
            var status = Utf8.ToUtf16(span, chars, out int consumed, out _, replaceInvalidSequences: false, isFinalBlock: final);
            for (int i = 0; i < consumed; i++)
                if (span[i] == (byte)'\n') { line++; lineStart = offset + i + 1; }
            if (status == OperationStatus.InvalidData || final && consumed < length)
            {
                long at = offset + consumed;
                return (line, at - lineStart + 1, at, span[consumed]);
            }
            if (final) return (line, 1, offset, 0);
            offset += consumed;
            kept = length - consumed;
            span[consumed..].CopyTo(bytes);
        }
    }
}
