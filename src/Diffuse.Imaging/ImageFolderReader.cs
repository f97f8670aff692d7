using SkiaSharp;

namespace Diffuse.Imaging;

/// <summary>
/// The images of a folder, resized and cropped to one size, as plain arrays (this project does not depend on the core
/// library; <c>Diffuse.Data.Images.ImageDataset.FromPixels</c> turns them into a data set).
/// </summary>
/// <param name="Pixels">The pixels, <c>[N, Channels, Height, Width]</c>: image after image, channel after channel, rows top to bottom.</param>
/// <param name="Labels">The class of each image (index into <paramref name="ClassNames"/>), or null when the folder has no class sub-folders.</param>
/// <param name="ClassNames">The class sub-folder names, sorted ordinally; empty when unlabelled.</param>
/// <param name="Channels">1 (grey) or 3 (RGB).</param>
/// <param name="Height">Rows per image.</param>
/// <param name="Width">Columns per image.</param>
/// <param name="Files">The path of each image relative to the folder, '/'-separated, in the order of the pixels.</param>
/// <param name="Skipped">How many image files were skipped as unreadable.</param>
public sealed record ImageFolderData(byte[] Pixels, int[]? Labels, string[] ClassNames, int Channels, int Height, int Width,
    string[] Files, int Skipped)
{
    /// <summary>The number of images read.</summary>
    public int Count => Files.Length;
}

/// <summary>
/// An error in a folder of images given by the user (missing folder, no images, or an unreadable image in strict
/// mode). Its message names the problem and what to do.
/// </summary>
public sealed class ImageFolderException : Exception
{
    /// <summary>Creates the error with a message that names the problem and what to do.</summary>
    public ImageFolderException(string message) : base(message) { }

    /// <summary>Creates the error with a message and the lower-level cause.</summary>
    public ImageFolderException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>
/// Reads a folder of PNG, JPEG, WebP or BMP images, with sub-folder names as class labels, resized and centre-cropped
/// to one size, in grey or RGB.
/// </summary>
/// <remarks>
/// <para>Classes. Each sub-folder of <c>folder</c> that holds images (at any depth) is a class; classes are numbered in
/// the ordinal order of their names. Images directly in <c>folder</c> are then ignored with a warning. A folder
/// without such sub-folders gives its own images, unlabelled. Within a class, files are read in the ordinal order of
/// their relative paths. Hidden files and folders are skipped.</para>
/// <para>Geometry (as torchvision's <c>Resize</c> then <c>CenterCrop</c>). Each image is scaled by
/// s = max(W/w, H/h), so that it covers the target W×H, the other side rounded to whole pixels; then the target is cut
/// from the middle, the offset rounded to whole pixels. For a square target this scales the shorter side to the size.
/// Both steps are one Skia draw: trilinear mipmap sampling when shrinking (anti-aliased), the interpolating
/// Catmull–Rom cubic when enlarging, and an exact copy when only cropping. EXIF orientation is not applied: images are
/// used as stored.</para>
/// <para>Colour. Transparent areas are composited over black. Grey is ITU-R BT.601 luma,
/// Y = (299 R + 587 G + 114 B)/1000 rounded, so a grey image keeps its values exactly; a grey image read as RGB has
/// three equal channels. No colour-profile conversion is made.</para>
/// <para>Unreadable images. A file that does not decode completely (corrupt, truncated, not an image) is skipped with
/// a warning naming it, or is an error when <c>strict</c>.</para>
/// <para>Symbolic links are followed, but every folder is read once and every file counted once, by its real path
/// (all links resolved): a link back to a folder already being read (<c>self → .</c>, or two folders linking to each
/// other) is skipped with a warning, as is a second path to the same image. A link whose target does not exist is
/// skipped with a warning, or is an error when <c>strict</c>.</para>
/// </remarks>
public static class ImageFolderReader
{
    /// <summary>The largest target side accepted.</summary>
    public const int MaxSize = 4096;

    /// <summary>Images with more pixels than this are skipped (or an error when strict) rather than decoded.</summary>
    public const long MaxSourcePixels = 100_000_000;

    /// <summary>The file extensions read, compared ignoring case.</summary>
    public static IReadOnlyList<string> Extensions { get; } = Array.AsReadOnly(new[] { ".png", ".jpg", ".jpeg", ".webp", ".bmp" });

    /// <summary>Reads the folder's images resized and centre-cropped to <paramref name="size"/>×<paramref name="size"/>.</summary>
    /// <inheritdoc cref="Load(string, int, int, bool, bool, Action{string}?)"/>
    public static ImageFolderData Load(string folder, int size, bool grayscale, bool strict = false, Action<string>? warn = null) =>
        Load(folder, size, size, grayscale, strict, warn);

    /// <summary>Reads the folder's images resized and centre-cropped to <paramref name="width"/>×<paramref name="height"/>.</summary>
    /// <param name="folder">The folder: class sub-folders of images, or images.</param>
    /// <param name="width">The width of every image read.</param>
    /// <param name="height">The height of every image read.</param>
    /// <param name="grayscale">True for one grey channel, false for RGB.</param>
    /// <param name="strict">True to stop at the first unreadable image instead of skipping it.</param>
    /// <param name="warn">Receives one line per skipped image or ignored file group.</param>
    /// <exception cref="ArgumentOutOfRangeException">A side is below 1 or above <see cref="MaxSize"/>.</exception>
    /// <exception cref="ImageFolderException">
    /// The folder is missing or holds no image, no image could be read, or (with <paramref name="strict"/>) an image
    /// is unreadable.
    /// </exception>
    public static ImageFolderData Load(string folder, int width, int height, bool grayscale, bool strict = false, Action<string>? warn = null)
    {
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(width, MaxSize);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(height, MaxSize);
        if (File.Exists(folder))
            throw new ImageFolderException($"'{folder}' is a file; give the folder that holds the images (one sub-folder per class).");
        if (!Directory.Exists(folder))
            throw new ImageFolderException($"Image folder '{folder}' does not exist: check the path (relative paths start from '{Environment.CurrentDirectory}').");

        var (classNames, files) = ListImages(folder, warn, strict);
        if (files.Count == 0)
            throw new ImageFolderException(
                $"'{folder}' holds no {string.Join("/", Extensions.Select(e => e.TrimStart('.').ToUpperInvariant()))} images: "
                + "put the images in one sub-folder per class (or directly in the folder for unlabelled images).");

        int channels = grayscale ? 1 : 3;
        int perImage = channels * width * height;
        var pixels = new List<byte[]>(files.Count);
        var labels = new List<int>(files.Count);
        var kept = new List<string>(files.Count);
        int skipped = 0;
        foreach (var (path, label) in files)
        {
            string relative = Path.GetRelativePath(folder, path).Replace('\\', '/');
            string? problem = TryRead(path, width, height, grayscale, out byte[]? image);
            if (problem is not null)
            {
                if (strict)
                    throw new ImageFolderException($"Cannot read image '{path}': {problem}. Replace or delete it, or read without strict mode to skip unreadable images.");
                skipped++;
                warn?.Invoke($"skipped '{path}': {problem}");
                continue;
            }
            pixels.Add(image!);
            labels.Add(label);
            kept.Add(relative);
        }
        if (kept.Count == 0)
            throw new ImageFolderException($"None of the {files.Count} images in '{folder}' could be read (see the warnings): check the files.");
        if (classNames.Length > 0)
        {
            var counts = new int[classNames.Length];
            foreach (int label in labels) counts[label]++;
            for (int k = 0; k < classNames.Length; k++)
                if (counts[k] == 0) warn?.Invoke($"class '{classNames[k]}' of '{folder}' has no readable image");
        }
        if ((long)kept.Count * perImage > Array.MaxLength)
            throw new ImageFolderException($"{kept.Count:N0} images of {channels}×{height}×{width} are more than can be held at once; use fewer or smaller images.");

        var all = new byte[kept.Count * perImage];
        for (int i = 0; i < pixels.Count; i++) pixels[i].CopyTo(all, i * perImage);
        return new ImageFolderData(all, classNames.Length > 0 ? labels.ToArray() : null, classNames, channels, height, width,
            kept.ToArray(), skipped);
    }

    /// <summary>
    /// Reads one image file at its own size: planar bytes [C, H, W] with C = 1 when every pixel is grey (R = G = B, as
    /// grayscale PNGs decode), else 3; alpha is dropped. With <paramref name="width"/> and <paramref name="height"/> the
    /// image is fitted to that size as folders are (resized to cover, centre-cropped), and <paramref name="grayscale"/>
    /// fixes the channels.
    /// </summary>
    /// <exception cref="ImageFolderException">The file cannot be read or decoded.</exception>
    public static (byte[] Pixels, int Channels, int Height, int Width) ReadFile(string path, int? width = null, int? height = null, bool? grayscale = null)
    {
        if (!File.Exists(path)) throw new ImageFolderException($"Image '{path}' does not exist: check the path (relative paths start from '{Environment.CurrentDirectory}').");
        SKBitmap? bitmap = null;
        string? problem = ReadAll(path, out var bytes) ?? TryDecode(bytes!, out bitmap);
        if (problem is not null) throw new ImageFolderException($"Cannot read image '{path}': {problem}.");
        return Planar(bitmap!, width, height, grayscale);
    }

    /// <summary>
    /// <see cref="ReadFile"/> for an image already in memory (a PNG, JPEG, WebP or BMP file's bytes): the same pixels as
    /// reading a file with those bytes. <paramref name="name"/> names the image in error messages.
    /// </summary>
    /// <exception cref="ImageFolderException">The bytes cannot be decoded.</exception>
    public static (byte[] Pixels, int Channels, int Height, int Width) ReadBytes(byte[] bytes, string name, int? width = null, int? height = null, bool? grayscale = null)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        string? problem = TryDecode(bytes, out var bitmap);
        if (problem is not null) throw new ImageFolderException($"Cannot read image '{name}': {problem}.");
        return Planar(bitmap!, width, height, grayscale);
    }

    /// <summary>The planar pixels of a decoded image (disposed here), fitted to a size when one is given.</summary>
    private static (byte[] Pixels, int Channels, int Height, int Width) Planar(SKBitmap bitmap, int? width, int? height, bool? grayscale)
    {
        using (bitmap)
        {
            int w = width ?? bitmap.Width, h = height ?? bitmap.Height;
            var rgb = Fit(bitmap, w, h, grayscale: false);
            int plane = w * h;
            bool grey = grayscale ?? Enumerable.Range(0, plane).All(i => rgb[i] == rgb[plane + i] && rgb[i] == rgb[2 * plane + i]);
            return (grey ? rgb[..plane] : rgb, grey ? 1 : 3, h, w);
        }
    }

    /// <summary>
    /// Resizes and centre-crops one decoded image to <paramref name="width"/>×<paramref name="height"/> as described in
    /// the class remarks, returning planar bytes <c>[C, H, W]</c>.
    /// </summary>
    internal static byte[] Fit(SKBitmap source, int width, int height, bool grayscale)
    {
        int w = source.Width, h = source.Height;
        double scale = Math.Max((double)width / w, (double)height / h);
        // The resized image's size, the side that covers the target rounded to whole pixels (as torchvision's Resize).
        double resizedW = width / (double)w >= height / (double)h ? width : Math.Round(w * scale);
        double resizedH = width / (double)w >= height / (double)h ? Math.Round(h * scale) : height;
        double scaleX = resizedW / w, scaleY = resizedH / h;
        double left = Math.Round((resizedW - width) / 2), top = Math.Round((resizedH - height) / 2);
        var sourceRect = SKRect.Create((float)(left / scaleX), (float)(top / scaleY), (float)(width / scaleX), (float)(height / scaleY));
        var sampling = scaleX == 1 && scaleY == 1
            ? new SKSamplingOptions(SKFilterMode.Nearest)                        // a plain crop: pixels copied exactly
            : scale < 1
                ? new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear) // anti-aliased shrinking
                : new SKSamplingOptions(SKCubicResampler.CatmullRom);             // interpolating cubic (PIL's bicubic)

        using var target = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        using (var canvas = new SKCanvas(target))
        using (var image = SKImage.FromBitmap(source))
        {
            canvas.Clear(SKColors.Black);
            canvas.DrawImage(image, sourceRect, SKRect.Create(width, height), sampling);
        }
        ReadOnlySpan<byte> rgba = target.GetPixelSpan();
        int plane = width * height;
        var planar = new byte[(grayscale ? 1 : 3) * plane];
        for (int i = 0; i < plane; i++)
        {
            byte r = rgba[4 * i], g = rgba[4 * i + 1], b = rgba[4 * i + 2];
            if (grayscale)
            {
                planar[i] = (byte)((299 * r + 587 * g + 114 * b + 500) / 1000);
            }
            else
            {
                planar[i] = r;
                planar[plane + i] = g;
                planar[2 * plane + i] = b;
            }
        }
        return planar;
    }

    /// <summary>Decodes and fits one file; returns why it cannot be read, or null with the planar pixels.</summary>
    private static string? TryRead(string path, int width, int height, bool grayscale, out byte[]? planar)
    {
        planar = null;
        SKBitmap? bitmap = null;
        string? problem = ReadAll(path, out var bytes) ?? TryDecode(bytes!, out bitmap);
        if (problem is not null) return problem;
        using (bitmap) planar = Fit(bitmap!, width, height, grayscale);
        return null;
    }

    /// <summary>Reads a file's bytes; returns why it cannot be read, or null.</summary>
    private static string? ReadAll(string path, out byte[]? bytes)
    {
        bytes = null;
        try
        {
            bytes = File.ReadAllBytes(path);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"the file cannot be read ({e.Message})";
        }
    }

    /// <summary>Decodes an image file's bytes into an RGBA bitmap (owned by the caller); returns why they cannot be, or null.</summary>
    private static string? TryDecode(byte[] bytes, out SKBitmap? decodedBitmap)
    {
        decodedBitmap = null;
        if (bytes.Length == 0) return "the file is empty";
        var stream = new SKMemoryStream(bytes);
        using var codec = SKCodec.Create(stream, out var result); // takes ownership of the stream when it succeeds
        if (codec is null)
        {
            stream.Dispose();
            return $"not a readable image ({Describe(result)})";
        }
        var info = codec.Info;
        if (info.Width < 1 || info.Height < 1) return "the image has no pixels";
        if ((long)info.Width * info.Height > MaxSourcePixels)
            return $"the image is {info.Width}×{info.Height}, more than {MaxSourcePixels:N0} pixels";
        var bitmap = new SKBitmap(new SKImageInfo(info.Width, info.Height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var decoded = codec.GetPixels(bitmap.Info, bitmap.GetPixels());
        if (decoded != SKCodecResult.Success)
        {
            bitmap.Dispose();
            return decoded == SKCodecResult.IncompleteInput
                ? "the image data is incomplete (the file is truncated)"
                : $"the image cannot be decoded ({Describe(decoded)})";
        }
        decodedBitmap = bitmap;
        return null;
    }

    private static string Describe(SKCodecResult result) => result switch
    {
        SKCodecResult.IncompleteInput => "the file is truncated",
        SKCodecResult.InvalidInput or SKCodecResult.ErrorInInput => "the data is corrupt",
        SKCodecResult.Unimplemented => "an unsupported format",
        _ => "corrupt, truncated or not an image",
    };

    /// <summary>The class names and the image files with their labels (label 0 for all when unlabelled).</summary>
    private static (string[] ClassNames, List<(string Path, int Label)> Files) ListImages(string folder, Action<string>? warn, bool strict)
    {
        var walk = new FolderWalk(warn, strict);
        string root = Path.GetFullPath(folder);
        walk.Visit(root);
        var rootImages = walk.Files(root, recurse: false, new HashSet<string>(StringComparer.Ordinal));
        var seen = new HashSet<string>(StringComparer.Ordinal); // every image file of the classes, by its real path
        var classes = new List<(string Name, List<string> Files)>();
        foreach (string sub in walk.Folders(root))
        {
            var images = walk.Files(sub, recurse: true, seen)
                .OrderBy(p => Path.GetRelativePath(sub, p).Replace('\\', '/'), StringComparer.Ordinal).ToList();
            if (images.Count > 0) classes.Add((Path.GetFileName(sub), images));
        }
        if (classes.Count == 0)
            return ([], rootImages.Select(p => (p, 0)).ToList());
        if (rootImages.Count > 0)
            warn?.Invoke($"ignored {rootImages.Count} image{(rootImages.Count == 1 ? "" : "s")} directly in '{folder}': with class sub-folders, every image must be in one");
        var files = new List<(string Path, int Label)>();
        for (int k = 0; k < classes.Count; k++)
            files.AddRange(classes[k].Files.Select(p => (p, k)));
        return (classes.Select(c => c.Name).ToArray(), files);
    }
}
