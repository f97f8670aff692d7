using System.Text.RegularExpressions;

namespace Diffuse.Data.Images;

/// <summary>
/// Reads the binary version of CIFAR-10 (Krizhevsky 2009): <c>data_batch_1.bin</c> … <c>data_batch_5.bin</c> and
/// <c>test_batch.bin</c>, as found in <c>cifar-10-batches-bin/</c>.
/// </summary>
/// <remarks>
/// Each file is a sequence of 3,073-byte records: one label byte (0–9), then 3×32×32 pixel bytes, the red, green and
/// blue planes each row by row: already the <c>[C, H, W]</c> layout of <see cref="ImageDataset"/>. Class names come
/// from <c>batches.meta.txt</c> beside the first file (one name a line), else they are the standard ten.
/// </remarks>
public static partial class CifarReader
{
    /// <summary>Bytes per record: 1 label byte + 3×32×32 pixels.</summary>
    public const int RecordBytes = 1 + ImageBytes;

    private const int ImageBytes = 3 * 32 * 32;

    /// <summary>The standard CIFAR-10 class names, in label order.</summary>
    public static IReadOnlyList<string> StandardClassNames { get; } = Array.AsReadOnly(
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]);

    /// <summary>Reads the records of one or more batch files, in the order given. Returns a new data set owned by the caller.</summary>
    /// <exception cref="DiffuseException">
    /// No file is given; a file is missing, unreadable or empty; its size is not a whole number of records; a label is
    /// beyond the class names; or <c>batches.meta.txt</c> names fewer classes than the labels use.
    /// </exception>
    public static ImageDataset Load(params string[] files)
    {
        ArgumentNullException.ThrowIfNull(files);
        if (files.Length == 0)
            throw new DiffuseException("No CIFAR-10 batch file was given: give data_batch_1.bin … data_batch_5.bin, test_batch.bin, or their folder.");
        long total = 0;
        var sizes = new long[files.Length];
        for (int f = 0; f < files.Length; f++)
        {
            string path = files[f] ?? throw new ArgumentException($"file {f} is null.", nameof(files));
            if (Directory.Exists(path))
                throw new DiffuseException($"'{path}' is a folder; give the batch files, or load the folder with CifarReader.LoadFolder.");
            if (!File.Exists(path))
                throw new DiffuseException($"CIFAR-10 batch file '{path}' does not exist: check the path (relative paths start from '{Environment.CurrentDirectory}').");
            long size = new FileInfo(path).Length;
            if (size == 0 || size % RecordBytes != 0)
                throw new DiffuseException(
                    $"'{path}' is {size:N0} bytes, not a whole number of {RecordBytes:N0}-byte CIFAR-10 records (1 label byte + 3×32×32 pixels)"
                    + (size > 0 ? $": enough for {Records(size / RecordBytes)} and {size % RecordBytes:N0} bytes more. It is truncated or" : ". It is empty or")
                    + " not a CIFAR-10 binary batch (the Python version is a pickle and CIFAR-100 records have 2 label bytes); download the CIFAR-10 binary version.");
            sizes[f] = size;
            total += size / RecordBytes;
        }
        if (total * ImageBytes > Array.MaxLength)
            throw new DiffuseException($"{total:N0} CIFAR images are more than can be loaded at once; load fewer files.");

        string[] names = ReadClassNames(Path.GetDirectoryName(Path.GetFullPath(files[0]))!);
        var pixels = new byte[total * ImageBytes];
        var labels = new long[total];
        var record = new byte[RecordBytes];
        long n = 0;
        for (int f = 0; f < files.Length; f++)
        {
            try
            {
                using var stream = new FileStream(files[f], FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
                for (long r = 0; r < sizes[f] / RecordBytes; r++, n++)
                {
                    stream.ReadExactly(record);
                    if (record[0] >= names.Length)
                        throw new DiffuseException(
                            $"'{files[f]}': record {r} has label {record[0]}, but there are only {names.Length} classes (0–{names.Length - 1}); "
                            + "the file is not a CIFAR-10 batch (CIFAR-100 records have 2 label bytes) or it is damaged.");
                    labels[n] = record[0];
                    record.AsSpan(1).CopyTo(pixels.AsSpan((int)(n * ImageBytes), ImageBytes));
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new DiffuseException($"Cannot read CIFAR-10 batch file '{files[f]}': {e.Message}", e);
            }
        }
        string source = files.Length == 1 ? files[0] : $"{files[0]} (+{files.Length - 1} more)";
        return ImageDataset.FromPixels(pixels, 3, 32, 32, labels, names, source);
    }

    /// <summary>
    /// Reads one split from a folder: <c>data_batch_*.bin</c> in the order of their numbers for training,
    /// <c>test_batch.bin</c> for testing. A folder that holds <c>cifar-10-batches-bin/</c> (as the archive extracts)
    /// is accepted too. Returns a new data set owned by the caller.
    /// </summary>
    /// <exception cref="DiffuseException">The folder or the split's files are missing, or a file is invalid (see <see cref="Load"/>).</exception>
    public static ImageDataset LoadFolder(string folder, DatasetSplit split)
    {
        ArgumentNullException.ThrowIfNull(folder);
        if (!Directory.Exists(folder))
            throw new DiffuseException($"CIFAR-10 folder '{folder}' does not exist: check the path.");
        string inner = Path.Combine(folder, "cifar-10-batches-bin");
        if (!File.Exists(Path.Combine(folder, "test_batch.bin")) && Directory.Exists(inner)) folder = inner;
        string[] files;
        if (split == DatasetSplit.Test)
        {
            string test = Path.Combine(folder, "test_batch.bin");
            files = File.Exists(test) ? [test] : [];
        }
        else
        {
            files = Directory.GetFiles(folder, "data_batch_*.bin")
                .Select(p => (Path: p, Match: BatchName().Match(Path.GetFileName(p))))
                .Where(x => x.Match.Success)
                .OrderBy(x => int.Parse(x.Match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))
                .Select(x => x.Path)
                .ToArray();
        }
        if (files.Length == 0)
            throw new DiffuseException(
                $"'{folder}' holds no {(split == DatasetSplit.Test ? "test_batch.bin" : "data_batch_1.bin … data_batch_5.bin")}: "
                + "give the folder of the CIFAR-10 binary version (cifar-10-batches-bin).");
        return Load(files);
    }

    /// <summary>The names in <c>batches.meta.txt</c> in <paramref name="folder"/> (non-empty lines, trimmed), else the standard ten.</summary>
    private static string[] ReadClassNames(string folder)
    {
        string meta = Path.Combine(folder, "batches.meta.txt");
        if (!File.Exists(meta)) return StandardClassNames.ToArray();
        try
        {
            var names = File.ReadAllLines(meta).Select(l => l.Trim()).Where(l => l.Length > 0).ToArray();
            if (names.Length == 0)
                throw new DiffuseException($"'{meta}' names no classes: write one class name a line, or delete it to use the standard CIFAR-10 names.");
            return names;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DiffuseException($"Cannot read the class names in '{meta}': {e.Message}", e);
        }
    }

    private static string Records(long n) => n == 1 ? "1 record" : $"{n:N0} records";

    [GeneratedRegex(@"^data_batch_(\d{1,6})\.bin$", RegexOptions.CultureInvariant)]
    private static partial Regex BatchName();
}
