namespace Diffuse.Imaging;

/// <summary>
/// Writes a file through a temporary file in the same folder renamed over the target, so that an error never leaves a
/// half-written file nor destroys the previous one. (The core library's <c>Diffuse.IO.AtomicFile</c> does the same;
/// this project keeps its own copy so that it does not depend on TorchSharp.)
/// </summary>
internal static class AtomicWrite
{
    /// <summary>Reports each stale temporary file removed (see <see cref="OutputFiles.StaleFileRemoved"/>).</summary>
    internal static event Action<string>? StaleFileRemoved
    {
        add => Diffuse.IO.StaleTemporaryFiles.Removed += value;
        remove => Diffuse.IO.StaleTemporaryFiles.Removed -= value;
    }

    public static void Bytes(string path, byte[] bytes) => Stream(path, s => s.Write(bytes));

    public static void Stream(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full) ?? ".";
        Directory.CreateDirectory(folder);
        Diffuse.IO.StaleTemporaryFiles.Clean(folder);
        string temp = Diffuse.IO.StaleTemporaryFiles.NameFor(folder, full);
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }
}
