using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Diffuse.IO;

/// <summary>
/// Removes the temporary files that an interrupted atomic write left behind. Atomic writes name their temporary file
/// <c>.&lt;name&gt;.&lt;pid&gt;.&lt;guid&gt;.tmp</c> beside the target; when a process is killed between creating and renaming
/// it, the file stays. The first time a process writes into a folder, such files whose process id is not a running
/// process are deleted, and each deletion is reported. A file of a running process (this one, or another still
/// writing) is never touched. This source file is compiled into both Diffuse and Diffuse.Imaging (which does not
/// depend on the core library), so that both writers clean up the same way.
/// </summary>
internal static partial class StaleTemporaryFiles
{
    private static readonly ConcurrentDictionary<string, bool> Cleaned = new(StringComparer.Ordinal);

    /// <summary>Receives the path of every stale temporary file removed.</summary>
    internal static Action<string>? Removed { get; set; }

    /// <summary>The temporary file name for <paramref name="target"/> written by this process.</summary>
    internal static string NameFor(string folder, string target) =>
        Path.Combine(folder, $".{Path.GetFileName(target)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");

    [GeneratedRegex(@"^\..+\.(?<pid>[0-9]{1,10})\.[0-9a-f]{32}\.tmp$", RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();

    /// <summary>
    /// The temporary files (and staging folders) of <paramref name="folder"/> whose writing process no longer runs; none
    /// when the folder cannot be listed.
    /// </summary>
    internal static IReadOnlyList<string> Find(string folder)
    {
        IEnumerable<string> files;
        try
        {
            // Files, and the staging folders of writers that fill a folder before renaming it.
            files = Directory.EnumerateFileSystemEntries(folder, ".*.tmp").ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Array.Empty<string>();
        }
        var stale = new List<string>();
        foreach (string path in files)
        {
            var match = Pattern().Match(Path.GetFileName(path));
            if (!match.Success || !int.TryParse(match.Groups["pid"].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int pid)) continue;
            if (pid == Environment.ProcessId || IsRunning(pid)) continue;
            stale.Add(path);
        }
        return stale;
    }

    /// <summary>Removes the stale temporary files of <paramref name="folder"/>, once per folder and process.</summary>
    internal static void Clean(string folder)
    {
        if (!Cleaned.TryAdd(Path.GetFullPath(folder), true)) return;
        foreach (string path in Find(folder))
        {
            try
            {
                if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
                else File.Delete(path);
                Removed?.Invoke(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Another process removed it first, or it is not ours to remove: leave it.
            }
        }
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }
}
