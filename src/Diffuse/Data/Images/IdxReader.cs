using System.Buffers.Binary;
using System.IO.Compression;

namespace Diffuse.Data.Images;

/// <summary>
/// Reads the IDX files in which MNIST, Fashion-MNIST, KMNIST and EMNIST are distributed
/// (<c>train-images-idx3-ubyte</c> with <c>train-labels-idx1-ubyte</c>, and <c>t10k-…</c>), plain or gzip-compressed.
/// </summary>
/// <remarks>
/// <para>Format (LeCun et al., the MNIST page): a 4-byte magic number <c>00 00 08 n</c> (unsigned bytes, n
/// dimensions), n big-endian int32 sizes, then the values row-major. Image files have 3 dimensions [N, H, W] and
/// become one-channel images; label files have one [N].</para>
/// <para>Compression is recognised by the gzip magic bytes (<c>1F 8B</c>), whatever the file is called. A file must
/// hold exactly the bytes its header announces: a truncated or over-long file is an error that names the file and
/// both sizes.</para>
/// </remarks>
public static class IdxReader
{
    private const int ImagesMagic = 0x00000803;
    private const int LabelsMagic = 0x00000801;
    private const int MaxSide = 1 << 16;

    /// <summary>
    /// Reads an IDX image file and its labels. Without <paramref name="labelsPath"/>, the labels file is looked for
    /// beside the images under the standard name (<c>images</c> → <c>labels</c>, <c>idx3</c> → <c>idx1</c>, with or
    /// without <c>.gz</c>); when there is none the images are unlabelled. Returns a new data set owned by the caller.
    /// </summary>
    /// <param name="imagesPath">The images file, such as <c>train-images-idx3-ubyte.gz</c>.</param>
    /// <param name="labelsPath">The labels file, or null to find it beside the images.</param>
    /// <param name="classNames">The class names; null for "0", "1", … up to the largest label.</param>
    /// <param name="log">Receives a line naming the labels file found, or saying that none was.</param>
    /// <exception cref="DiffuseException">
    /// A file is missing, unreadable, not an IDX file of unsigned bytes of the right kind, truncated or too long; the
    /// label count differs from the image count; or a label has no class name.
    /// </exception>
    public static ImageDataset Load(string imagesPath, string? labelsPath = null, string[]? classNames = null, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(imagesPath);
        var (pixels, dims) = ReadFile(imagesPath, ImagesMagic, "image");
        int count = dims[0], height = dims[1], width = dims[2];

        if (labelsPath is null)
        {
            labelsPath = FindLabels(imagesPath);
            if (labelsPath is null)
                log?.Invoke($"no labels file beside '{imagesPath}' (looked for {string.Join(", ", LabelCandidates(imagesPath).Select(Path.GetFileName).Distinct())}): the images are unlabelled");
            else
                log?.Invoke($"labels of '{Path.GetFileName(imagesPath)}' read from '{labelsPath}'");
        }
        long[]? labels = null;
        if (labelsPath is not null)
        {
            var (raw, labelDims) = ReadFile(labelsPath, LabelsMagic, "label");
            if (labelDims[0] != count)
                throw new DiffuseException(
                    $"'{labelsPath}' holds {labelDims[0]:N0} labels for the {count:N0} images of '{imagesPath}': the two files do not belong together "
                    + "(pair train-images with train-labels and t10k-images with t10k-labels).");
            labels = new long[count];
            for (int i = 0; i < count; i++) labels[i] = raw[i];
            if (classNames is not null)
                for (int i = 0; i < count; i++)
                    if (labels[i] >= classNames.Length)
                        throw new DiffuseException(
                            $"'{labelsPath}': label {labels[i]} of image {i} has no class name ({classNames.Length} names were given); give a name for every class.");
        }
        return ImageDataset.FromPixels(pixels, 1, height, width, labels, labels is null ? null : classNames, imagesPath);
    }

    /// <summary>
    /// Reads one split from a folder of IDX files under their standard names: <c>train-images-idx3-ubyte</c> (or
    /// <c>train-images.idx3-ubyte</c>, either with <c>.gz</c>) for training, <c>t10k-…</c> for testing, with the
    /// labels beside them.
    /// </summary>
    /// <exception cref="DiffuseException">The folder or the split's images file is missing, or a file is invalid (see <see cref="Load"/>).</exception>
    public static ImageDataset LoadFolder(string folder, DatasetSplit split, string[]? classNames = null, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(folder);
        if (!Directory.Exists(folder))
            throw new DiffuseException($"IDX folder '{folder}' does not exist: check the path.");
        string prefix = split == DatasetSplit.Train ? "train" : "t10k";
        string[] names = [$"{prefix}-images-idx3-ubyte", $"{prefix}-images.idx3-ubyte"];
        var candidates = names.SelectMany(n => new[] { n, n + ".gz" }).Select(n => Path.Combine(folder, n)).ToArray();
        string images = candidates.FirstOrDefault(File.Exists)
            ?? throw new DiffuseException(
                $"'{folder}' holds no {prefix}-images-idx3-ubyte[.gz]: put the IDX files of the {split.ToString().ToLowerInvariant()} split there under their standard names.");
        return Load(images, null, classNames, log);
    }

    /// <summary>The labels file beside <paramref name="imagesPath"/> under the standard name, or null if there is none.</summary>
    public static string? FindLabels(string imagesPath)
    {
        ArgumentNullException.ThrowIfNull(imagesPath);
        string full = Path.GetFullPath(imagesPath);
        return LabelCandidates(imagesPath).FirstOrDefault(c => File.Exists(c) && Path.GetFullPath(c) != full);
    }

    private static IEnumerable<string> LabelCandidates(string imagesPath)
    {
        string folder = Path.GetDirectoryName(imagesPath) ?? "";
        string name = Path.GetFileName(imagesPath);
        if (!name.Contains("images", StringComparison.OrdinalIgnoreCase)) yield break;
        string labels = ReplaceIgnoringCase(ReplaceIgnoringCase(name, "images", "labels"), "idx3", "idx1");
        string stem = labels.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? labels[..^3] : labels;
        foreach (string candidate in new[] { labels, stem, stem + ".gz" }.Distinct())
            yield return Path.Combine(folder, candidate);
    }

    private static string ReplaceIgnoringCase(string text, string what, string with) =>
        text.Replace(what, with, StringComparison.OrdinalIgnoreCase);

    /// <summary>Reads a whole IDX file of unsigned bytes and checks its magic number and length.</summary>
    private static (byte[] Values, int[] Dims) ReadFile(string path, int magic, string kind)
    {
        if (Directory.Exists(path))
            throw new DiffuseException($"'{path}' is a folder, not an IDX {kind} file: give the path of the file itself.");
        if (!File.Exists(path))
            throw new DiffuseException($"IDX {kind} file '{path}' does not exist: check the path (relative paths start from '{Environment.CurrentDirectory}').");
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            Span<byte> gzipMagic = stackalloc byte[2];
            bool gzip = file.ReadAtLeast(gzipMagic, 2, throwOnEndOfStream: false) == 2 && gzipMagic[0] == 0x1F && gzipMagic[1] == 0x8B;
            file.Position = 0;
            using Stream stream = gzip ? new GZipStream(file, CompressionMode.Decompress) : file;
            return ReadIdx(stream, path, magic, kind);
        }
        catch (InvalidDataException e)
        {
            throw new DiffuseException($"'{path}' is a damaged gzip file ({e.Message}): download it again.", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DiffuseException($"Cannot read IDX {kind} file '{path}': {e.Message}", e);
        }
    }

    private static (byte[] Values, int[] Dims) ReadIdx(Stream stream, string path, int expectedMagic, string kind)
    {
        int expectedDims = expectedMagic & 0xFF;
        string standard = kind == "image" ? "train-images-idx3-ubyte or t10k-images-idx3-ubyte" : "train-labels-idx1-ubyte or t10k-labels-idx1-ubyte";
        Span<byte> header = stackalloc byte[4];
        int got = stream.ReadAtLeast(header, 4, throwOnEndOfStream: false);
        if (got < 4)
            throw new DiffuseException($"'{path}' holds {got} bytes, too few for an IDX {kind} file (which starts with a 4-byte magic number): it is empty or truncated; download it again.");
        int magic = BinaryPrimitives.ReadInt32BigEndian(header);
        if (header[0] != 0 || header[1] != 0 || header[3] is 0 or > 4)
            throw new DiffuseException(
                $"'{path}' is not an IDX file: it starts with 0x{magic:X8} where an IDX {kind} file starts with 0x{expectedMagic:X8}; give {standard} (plain or .gz).");
        if (header[2] != 0x08)
            throw new DiffuseException(
                $"'{path}' holds IDX values of type 0x{header[2]:X2} (0x{magic:X8}); only unsigned bytes (type 0x08, magic 0x{expectedMagic:X8}) are supported.");
        if (header[3] != expectedDims)
        {
            string what = header[3] switch { 1 => "a label file", 3 => "an image file", _ => $"a {header[3]}-dimensional IDX file" };
            throw new DiffuseException(
                $"'{path}' is {what} (magic 0x{magic:X8}), not an IDX {kind} file (magic 0x{expectedMagic:X8}); give {standard}.");
        }
        var dimBytes = new byte[4 * expectedDims];
        got = stream.ReadAtLeast(dimBytes, dimBytes.Length, throwOnEndOfStream: false);
        if (got < dimBytes.Length)
            throw new DiffuseException($"'{path}' is truncated inside its header ({4 + got} of {4 + dimBytes.Length} bytes): download it again.");
        var dims = new int[expectedDims];
        long total = 1;
        for (int d = 0; d < expectedDims; d++)
        {
            dims[d] = BinaryPrimitives.ReadInt32BigEndian(dimBytes.AsSpan(4 * d));
            if (dims[d] < 1 || (d > 0 && dims[d] > MaxSide))
                throw new DiffuseException($"'{path}': its header announces sizes [{string.Join(", ", dims.Take(d + 1))}]; a size of {dims[d]} is not valid. The file is damaged: download it again.");
            total *= dims[d];
        }
        string shape = kind == "image" ? $"{dims[0]:N0} images of {dims[1]}×{dims[2]}" : $"{dims[0]:N0} labels";
        if (total > Array.MaxLength)
            throw new DiffuseException($"'{path}': {shape} ({total:N0} bytes) are more than can be loaded at once; split the file.");
        // The buffer grows with the data that arrives, never ahead of it to the size the header claims: a damaged header
        // announcing 2 GB of a 100-byte file is reported as a truncation without allocating 2 GB.
        var values = new byte[Math.Min(total, 1 << 20)];
        long read = 0;
        while (true)
        {
            read += stream.ReadAtLeast(values.AsSpan((int)read), values.Length - (int)read, throwOnEndOfStream: false);
            if (read < values.Length || values.Length == total) break;
            Array.Resize(ref values, (int)Math.Min(total, 2L * values.Length));
        }
        if (read < total)
        {
            string whole = kind == "image" ? $", {read / ((long)dims[1] * dims[2]):N0} whole images" : "";
            throw new DiffuseException(
                $"'{path}' is truncated: its header announces {shape} ({total:N0} bytes of data) but it holds only {read:N0}{whole}; download it again.");
        }
        Span<byte> extra = stackalloc byte[1];
        if (stream.Read(extra) > 0)
            throw new DiffuseException(
                $"'{path}' holds more data than its header announces ({shape}, {values.Length:N0} bytes): it is damaged or not a {kind} file of this kind; download it again.");
        return (values, dims);
    }
}
