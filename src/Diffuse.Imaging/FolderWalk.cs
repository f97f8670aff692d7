namespace Diffuse.Imaging;

/// <summary>
/// Lists the files and sub-folders of an image folder following symbolic links without ever entering a folder twice:
/// each folder is identified by its real path (every link resolved, as POSIX <c>realpath</c>), so a link cycle ends at
/// its first repetition and a file reached through two paths is counted once.
/// </summary>
internal sealed class FolderWalk(Action<string>? warn, bool strict)
{
    /// <summary>The most links followed while resolving one path, as Linux's limit (ELOOP beyond it).</summary>
    private const int MaxLinks = 40;

    private static readonly EnumerationOptions Options = new()
    {
        RecurseSubdirectories = false,
        AttributesToSkip = FileAttributes.Hidden | FileAttributes.System,
        IgnoreInaccessible = true,
    };

    // Real path of each folder read → the path it was first reached by.
    private readonly Dictionary<string, string> _visited = new(StringComparer.Ordinal);

    /// <summary>Marks <paramref name="folder"/> as read; false (with a warning) when it was read before under another path.</summary>
    public bool Visit(string folder)
    {
        string? real = RealPath(folder);
        if (real is null)
        {
            Problem(folder, "a symbolic link whose target does not exist (or a chain of more than 40 links)");
            return false;
        }
        if (_visited.TryGetValue(real, out string? first))
        {
            warn?.Invoke($"skipped '{folder}': it is the folder '{first}' again, reached through a symbolic link (each folder is read once)");
            return false;
        }
        _visited.Add(real, folder);
        return true;
    }

    /// <summary>The readable, not yet visited sub-folders of <paramref name="folder"/>, in ordinal order (each marked as visited).</summary>
    public List<string> Folders(string folder) =>
        Directory.EnumerateDirectories(folder, "*", Options).Order(StringComparer.Ordinal).Where(Visit).ToList();

    /// <summary>
    /// The image files of <paramref name="folder"/> (and with <paramref name="recurse"/> of its sub-folders not yet
    /// visited), each file once by its real path across calls that share <paramref name="seen"/>.
    /// </summary>
    public List<string> Files(string folder, bool recurse, HashSet<string> seen)
    {
        var result = new List<string>();
        foreach (string path in Directory.EnumerateFiles(folder, "*", Options).Order(StringComparer.Ordinal))
        {
            bool image = IsImage(path);
            if (!image && new FileInfo(path).LinkTarget is null) continue;
            string? real = RealPath(path);
            if (real is null || !File.Exists(real) && !Directory.Exists(real))
            {
                Problem(path, "a symbolic link whose target does not exist");
                continue;
            }
            if (!image) continue;
            if (seen.Add(real)) result.Add(path);
            else warn?.Invoke($"skipped '{path}': the same file as another image already read (reached through a symbolic link)");
        }
        if (recurse)
            foreach (string sub in Folders(folder))
                result.AddRange(Files(sub, recurse: true, seen));
        return result;
    }

    private void Problem(string path, string what)
    {
        if (strict)
            throw new ImageFolderException($"'{path}' is {what}. Remove or fix the link, or read without strict mode to skip it.");
        warn?.Invoke($"skipped '{path}': {what}");
    }

    /// <summary>
    /// The path with every symbolic link resolved and no '.' or '..' left, or null when a link is dangling or the chain
    /// of links is longer than <see cref="MaxLinks"/>.
    /// </summary>
    internal static string? RealPath(string path)
    {
        int links = 0;
        return Resolve(Path.GetFullPath(path), ref links);
    }

    private static string? Resolve(string full, ref int links)
    {
        string root = Path.GetPathRoot(full) ?? "/";
        string current = root;
        foreach (string part in full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            string next = Path.Combine(current, part);
            FileSystemInfo info = new FileInfo(next);
            if (info.LinkTarget is { } target)
            {
                if (++links > MaxLinks) return null;
                // The target is relative to the folder holding the link, which is already resolved.
                string? resolved = Resolve(Path.GetFullPath(target, current), ref links);
                if (resolved is null) return null;
                next = resolved;
            }
            else if (!info.Exists && !Directory.Exists(next))
            {
                return null;
            }
            current = next;
        }
        return current;
    }

    private static bool IsImage(string path)
    {
        string extension = Path.GetExtension(path);
        foreach (string e in ImageFolderReader.Extensions)
            if (extension.Equals(e, StringComparison.OrdinalIgnoreCase)) return true;
        return false;
    }
}
