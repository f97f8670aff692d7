namespace Diffuse.Checkpoints;

/// <summary>
/// An exclusive lock on a model folder (the file <c>.lock</c> in it, locked by the operating system for as long as the
/// process holds it open), so that two trainings never write into one folder. A process that dies releases it with
/// its open files, so no stale lock outlives its owner; the file records the owner's process id for the message of
/// whoever is refused. Within one process the lock is re-entrant (counted), so a command and the library calls it
/// makes can each take it. A folder that the lock created is removed again when nothing but the lock was written to it.
/// </summary>
public sealed class FolderLock : IDisposable
{
    /// <summary>The lock file's name.</summary>
    public const string FileName = ".lock";

    private static readonly Dictionary<string, (FileStream Stream, int Count)> Held = new(StringComparer.Ordinal);
    private static readonly Dictionary<string, bool> Created = new(StringComparer.Ordinal);
    private readonly string _key;
    private bool _released;

    /// <summary>How long to wait for a lock whose owner is exiting (its files close a moment after it is killed).</summary>
    private static readonly TimeSpan ExitGrace = TimeSpan.FromSeconds(2);

    private FolderLock(string key) => _key = key;

    /// <summary>Takes the lock of <paramref name="folder"/> (creating the folder when missing).</summary>
    /// <param name="folder">The model folder.</param>
    /// <exception cref="DiffuseException">Another process holds it, or the folder cannot be created or written.</exception>
    public static FolderLock Acquire(string folder)
    {
        string key = Path.GetFullPath(folder);
        lock (Held)
        {
            if (Held.TryGetValue(key, out var held))
            {
                Held[key] = (held.Stream, held.Count + 1);
                return new FolderLock(key);
            }
            string path = Path.Combine(key, FileName);
            FileStream stream;
            bool created = !Directory.Exists(key);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (true)
            {
                try
                {
                    Directory.CreateDirectory(key);
                    stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                    break;
                }
                catch (IOException e) when (File.Exists(path) && e is not PathTooLongException)
                {
                    if (clock.Elapsed < ExitGrace)
                    {
                        Thread.Sleep(100);
                        continue;
                    }
                    throw new DiffuseException($"another process{Owner(path)} is writing to '{folder}' (it holds {path}). Wait for it to finish, or write to another folder.", e);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new DiffuseException($"cannot write to '{folder}': {e.Message}. Choose a folder you can write to.", e);
                }
            }
            Created[key] = created;
            var owner = System.Text.Encoding.ASCII.GetBytes(Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture) + "\n");
            stream.SetLength(0);
            stream.Write(owner);
            stream.Flush();
            Held[key] = (stream, 1);
            return new FolderLock(key);
        }
    }

    /// <summary>Releases the lock (the last release of this process closes the file).</summary>
    public void Dispose()
    {
        if (_released) return;
        _released = true;
        lock (Held)
        {
            var (stream, count) = Held[_key];
            if (count > 1)
            {
                Held[_key] = (stream, count - 1);
                return;
            }
            Held.Remove(_key);
            stream.Dispose();
            // A folder this lock created and nothing else was written to (the command failed before writing) goes again.
            if (Created.Remove(_key, out bool created) && created)
                try
                {
                    if (Directory.EnumerateFileSystemEntries(_key).All(e => Path.GetFileName(e) == FileName))
                        Directory.Delete(_key, recursive: true);
                }
                catch (IOException)
                {
                }
        }
    }

    private static string Owner(string path)
    {
        try
        {
            using var reader = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var text = new StreamReader(reader).ReadLine();
            return int.TryParse(text, out int pid) ? $" (pid {pid})" : "";
        }
        catch (IOException)
        {
            return "";
        }
    }
}
