namespace Diffuse.IO;

/// <summary>
/// Writes files atomically: the content goes to a temporary file in the same folder, which is then renamed over the
/// target, so a crash or an error never leaves a half-written file and never destroys what was already there.
/// </summary>
public static class AtomicFile
{
    /// <summary>
    /// Reports each temporary file of an interrupted earlier write (named <c>.&lt;name&gt;.&lt;pid&gt;.&lt;guid&gt;.tmp</c>, of a
    /// process no longer running) removed from a folder the first time this process writes into it.
    /// </summary>
    public static event Action<string>? StaleFileRemoved
    {
        add => StaleTemporaryFiles.Removed += value;
        remove => StaleTemporaryFiles.Removed -= value;
    }

    /// <summary>Writes <paramref name="write"/>'s output to <paramref name="path"/> atomically.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string? folder = Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(folder)) Directory.CreateDirectory(folder);
        StaleTemporaryFiles.Clean(folder ?? ".");
        string temp = StaleTemporaryFiles.NameFor(folder ?? ".", full);
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                if (StreamFilter is { } filter)
                {
                    using var filtered = filter(full, stream);
                    write(filtered);
                    filtered.Flush();
                }
                else write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>
    /// Wraps the stream of every atomic write (for fault-injection tests: a filter that throws an
    /// <see cref="IOException"/> after some bytes stands for a disk that fills up there).
    /// </summary>
    internal static Func<string, Stream, Stream>? StreamFilter { get; set; }

    /// <summary>
    /// Temporary files of atomic writes in <paramref name="folder"/> (named <c>.&lt;name&gt;.&lt;pid&gt;.&lt;guid&gt;.tmp</c>)
    /// whose writing process no longer runs: leftovers of a process that was killed mid-write.
    /// </summary>
    /// <param name="folder">The folder to look in (not its subfolders).</param>
    public static IEnumerable<string> StaleTemporaries(string folder) =>
        Directory.Exists(folder) ? StaleTemporaryFiles.Find(folder) : Array.Empty<string>();

    /// <summary>Writes bytes to <paramref name="path"/> atomically.</summary>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        byte[] copy = bytes.ToArray();
        Write(path, s => s.Write(copy));
    }

    /// <summary>Writes UTF-8 text to <paramref name="path"/> atomically.</summary>
    public static void WriteAllText(string path, string text) =>
        WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text));
}
