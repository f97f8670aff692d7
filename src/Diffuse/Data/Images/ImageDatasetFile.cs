using System.Buffers.Binary;
using System.Text;
using Diffuse.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Data.Images;

/// <summary>
/// A compact binary file holding an <see cref="ImageDataset"/>: the cache that downloaded or converted data sets are
/// kept in, loaded in a fraction of a second.
/// </summary>
/// <remarks>
/// Layout, all integers little-endian: the 8 ASCII bytes <c>DFIMAGES</c>; int32 format version (1); int32 count N,
/// channels C, height H, width W; int32 class count K, then K names each as int32 byte length + UTF-8; the source as
/// int32 byte length + UTF-8; int32 1 if labelled, else 0; N·C·H·W pixel bytes (<c>[N, C, H, W]</c>); when labelled,
/// N int32 labels; the 8 ASCII bytes <c>DFIMGEND</c>. The end marker and the exact length reveal a truncated file.
/// </remarks>
public static class ImageDatasetFile
{
    /// <summary>The version of the layout this library writes and reads.</summary>
    public const int FormatVersion = 1;

    private static readonly byte[] StartMagic = "DFIMAGES"u8.ToArray();
    private static readonly byte[] EndMagic = "DFIMGEND"u8.ToArray();
    private const int MaxNameBytes = 1 << 16;

    /// <summary>Writes <paramref name="dataset"/> to <paramref name="path"/> atomically (the old file or the whole new one, never a part).</summary>
    /// <exception cref="DiffuseException">The file cannot be written.</exception>
    public static void Save(string path, ImageDataset dataset)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(dataset);
        Save(path, dataset.Count, dataset.Channels, dataset.Height, dataset.Width, dataset.ClassNames, dataset.Source,
            dataset.Labels, stream =>
            {
                using var contiguous = dataset.Images.contiguous();
                stream.Write(contiguous.bytes);
            });
    }

    /// <summary>Writes a data set given as parts; <paramref name="writePixels"/> writes the <c>[N, C, H, W]</c> bytes.</summary>
    internal static void Save(string path, int count, int channels, int height, int width, string[] classNames,
        string source, long[]? labels, Action<Stream> writePixels)
    {
        try
        {
            AtomicFile.Write(path, stream =>
            {
                using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
                writer.Write(StartMagic);
                writer.Write(FormatVersion);
                writer.Write(count);
                writer.Write(channels);
                writer.Write(height);
                writer.Write(width);
                writer.Write(labels is null ? 0 : classNames.Length);
                if (labels is not null)
                    foreach (string name in classNames) WriteString(writer, name);
                WriteString(writer, source);
                writer.Write(labels is null ? 0 : 1);
                writer.Flush();
                writePixels(stream);
                if (labels is not null)
                {
                    var raw = new byte[4 * labels.Length];
                    for (int i = 0; i < labels.Length; i++) BinaryPrimitives.WriteInt32LittleEndian(raw.AsSpan(4 * i), checked((int)labels[i]));
                    writer.Write(raw);
                }
                writer.Write(EndMagic);
            });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DiffuseException($"Cannot write image cache '{path}': {e.Message}", e);
        }
    }

    /// <summary>
    /// Whether <paramref name="path"/> is a complete file of this format and version (checked from its header and
    /// length, without reading the pixels), and how many images it holds.
    /// </summary>
    internal static bool IsComplete(string path, out int count)
    {
        count = 0;
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 4096);
            using var reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
            var header = ReadHeader(reader, stream, path);
            stream.Seek(-EndMagic.Length, SeekOrigin.End);
            if (!reader.ReadBytes(EndMagic.Length).AsSpan().SequenceEqual(EndMagic)) return false;
            count = header.Count;
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DiffuseException)
        {
            return false;
        }
    }

    /// <summary>Reads a file written by <see cref="Save(string, ImageDataset)"/>.</summary>
    /// <exception cref="DiffuseException">The file is missing, unreadable, of another format or version, or truncated.</exception>
    public static ImageDataset Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
            throw new DiffuseException($"Image cache '{path}' does not exist: check the path.");
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            return Read(stream, path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DiffuseException($"Cannot read image cache '{path}': {e.Message}", e);
        }
    }

    private readonly record struct Header(int Count, int Channels, int Height, int Width, string[] ClassNames, string Source, bool Labelled);

    /// <summary>Reads and checks the header, including that the file length matches it.</summary>
    private static Header ReadHeader(BinaryReader reader, Stream stream, string path)
    {
        try
        {
            byte[] magic = reader.ReadBytes(StartMagic.Length);
            if (!magic.AsSpan().SequenceEqual(StartMagic))
                throw Damaged(path, "it does not start with the image-cache marker");
            int version = reader.ReadInt32();
            if (version != FormatVersion)
                throw new DiffuseException(
                    $"Image cache '{path}' has format version {version}; this version of Diffuse reads version {FormatVersion}. Delete the file to rebuild it.");
            int count = reader.ReadInt32(), channels = reader.ReadInt32(), height = reader.ReadInt32(), width = reader.ReadInt32();
            int classCount = reader.ReadInt32();
            if (count < 1 || channels < 1 || height < 1 || width < 1 || classCount < 0 || classCount > 1 << 20)
                throw Damaged(path, $"its header announces {count} images of {channels}×{height}×{width} in {classCount} classes");
            var names = new string[classCount];
            for (int k = 0; k < classCount; k++) names[k] = ReadString(reader, path);
            string source = ReadString(reader, path);
            int labelled = reader.ReadInt32();
            if (labelled is not (0 or 1) || (labelled == 0 && classCount > 0))
                throw Damaged(path, $"its label flag is {labelled} with {classCount} classes");
            long pixelBytes = (long)count * channels * height * width;
            if (pixelBytes > Array.MaxLength)
                throw Damaged(path, $"its header announces {pixelBytes:N0} pixel bytes, more than one file can hold here");
            long expected = stream.Position + pixelBytes + (labelled == 1 ? 4L * count : 0) + EndMagic.Length;
            if (stream.Length != expected)
                throw Damaged(path, $"it is {stream.Length:N0} bytes where its header announces {expected:N0}");
            return new Header(count, channels, height, width, names, source, labelled == 1);
        }
        catch (EndOfStreamException e)
        {
            throw new DiffuseException($"Image cache '{path}' is truncated; delete it so that it is rebuilt.", e);
        }
    }

    private static ImageDataset Read(Stream stream, string path)
    {
        using var reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        var header = ReadHeader(reader, stream, path);
        int count = header.Count;
        var images = torch.empty([count, header.Channels, header.Height, header.Width], ScalarType.Byte);
        try
        {
            stream.ReadExactly(images.bytes);
            long[]? labels = null;
            if (header.Labelled)
            {
                var raw = reader.ReadBytes(checked(4 * count));
                labels = new long[count];
                for (int i = 0; i < count; i++)
                {
                    labels[i] = BinaryPrimitives.ReadInt32LittleEndian(raw.AsSpan(4 * i));
                    if (labels[i] < 0 || labels[i] >= header.ClassNames.Length)
                        throw Damaged(path, $"image {i} has label {labels[i]} outside its {header.ClassNames.Length} classes");
                }
            }
            if (!reader.ReadBytes(EndMagic.Length).AsSpan().SequenceEqual(EndMagic))
                throw Damaged(path, "it does not end with the image-cache end marker");
            return ImageDataset.Own(images, labels, header.Labelled ? header.ClassNames : null, header.Source);
        }
        catch (EndOfStreamException e)
        {
            images.Dispose();
            throw new DiffuseException($"Image cache '{path}' is truncated; delete it so that it is rebuilt.", e);
        }
        catch
        {
            images.Dispose();
            throw;
        }
    }

    private static DiffuseException Damaged(string path, string what) =>
        new($"Image cache '{path}' is damaged or not an image cache: {what}. Delete it so that it is rebuilt.");

    private static void WriteString(BinaryWriter writer, string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        writer.Write(bytes.Length);
        writer.Write(bytes);
    }

    private static string ReadString(BinaryReader reader, string path)
    {
        int length = reader.ReadInt32();
        if (length < 0 || length > MaxNameBytes) throw Damaged(path, $"a name is {length} bytes long");
        byte[] bytes = reader.ReadBytes(length);
        if (bytes.Length != length) throw new EndOfStreamException();
        return Encoding.UTF8.GetString(bytes);
    }
}
