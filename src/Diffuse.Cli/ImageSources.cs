using Diffuse.Data.Images;
using Diffuse.Imaging;

namespace Diffuse.Cli;

/// <summary>
/// The command line's image data: the library's <see cref="Data.Images.ImageSources"/> with its messages on stderr and
/// folders of pictures decoded by Diffuse.Imaging.
/// </summary>
public static class ImageSources
{
    /// <summary>See <see cref="Data.Images.ImageSources.IsImageData"/>.</summary>
    public static bool IsImageData(string data) => Data.Images.ImageSources.IsImageData(data);

    /// <summary>See <see cref="Data.Images.ImageSources.IsNamedDataset"/>.</summary>
    public static bool IsNamedDataset(string data) => Data.Images.ImageSources.IsNamedDataset(data);

    /// <summary>See <see cref="Data.Images.ImageSources.HasTestSplit"/>.</summary>
    public static bool HasTestSplit(string data) => Data.Images.ImageSources.HasTestSplit(data);

    /// <summary>See <see cref="Data.Images.ImageSources.FromTrainingSource"/>.</summary>
    public static string FromTrainingSource(string source) => Data.Images.ImageSources.FromTrainingSource(source);

    /// <summary>Loads the split of an image data set (see <see cref="Data.Images.ImageSources.Load"/>).</summary>
    public static ImageDataset Load(string data, DatasetSplit split, int size = 32, bool grayscale = false, bool strict = false) =>
        Data.Images.ImageSources.Load(data, split, size, grayscale, strict, Log, ReadFolder);

    /// <summary>Progress and warnings of the readers, on stderr.</summary>
    public static void Log(string message) => CliContext.Err.WriteLine(message);

    /// <summary>A folder of PNG/JPEG images decoded by Diffuse.Imaging.</summary>
    public static ImageDataset ReadFolder(string folder, int size, bool grayscale, bool strict, Action<string>? log)
    {
        try
        {
            var read = ImageFolderReader.Load(folder, size, grayscale, strict, log);
            return ImageDataset.FromPixels(read.Pixels, read.Channels, read.Height, read.Width,
                read.Labels?.Select(l => (long)l).ToArray(), read.ClassNames, folder);
        }
        catch (ImageFolderException e)
        {
            throw new DiffuseException(e.Message, e);
        }
    }
}
