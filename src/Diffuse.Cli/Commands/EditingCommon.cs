using System.ComponentModel;
using System.Globalization;
using Diffuse.Data.Images;
using Diffuse.Editing;
using Diffuse.Imaging;
using Diffuse.Sampling;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Diffuse.Cli.Commands;

/// <summary>Options shared by the editing commands (encode, decode, interpolate, edit, inpaint).</summary>
public class EditingSettings : SamplerSettings
{
    /// <summary>Settings from the command line.</summary>
    public EditingSettings()
    {
    }

    /// <summary>Settings given another way (by a request to <c>diffuse serve</c>): the model's name and the shared options.</summary>
    protected EditingSettings(EditingChoices choices)
    {
        Model = choices.Model;
        Class = choices.Class;
        Guidance = choices.Guidance;
        Resize = choices.Resize;
        Sampler = choices.Sampler;
        Steps = choices.Steps;
        Sigmas = choices.Sigmas;
        Spacing = choices.Spacing;
        Eta = choices.Eta;
        Variance = choices.Variance ?? "small";
        Clip = choices.Clip;
        Seed = choices.Seed;
    }

    /// <summary>Model folder.</summary>
    [CommandOption("--model <DIR>")]
    [Description("A model folder written by 'diffuse train', or the name of a model shipped with Diffuse (fashion-mnist).")]
    public string? Model { get; init; }

    /// <summary>Class.</summary>
    [CommandOption("--class <K>")]
    [Description("Class-conditional models: the class to edit towards (its number or name, e.g. 7 or sneaker).")]
    public string? Class { get; init; }

    /// <summary>Guidance.</summary>
    [CommandOption("--guidance <W>")]
    [Description("Classifier-free guidance scale s (0 unconditional, 1 plain conditional; Ho and Salimans' w = s − 1).")]
    public double? Guidance { get; init; }

    /// <summary>Resize.</summary>
    [CommandOption("--resize")]
    [Description("Fit images of another size or channel count to the model's (resized to cover, centre-cropped; grey or RGB as the model).")]
    public bool Resize { get; init; }

    /// <summary>
    /// The sampler of an editing command: without a sampler option, <see cref="DiffusionModel.DefaultEditingSampler"/>
    /// (50 DPM-Solver++(2M) steps on log-SNR levels); --steps alone keeps that sampler, --sampler alone takes 50 steps.
    /// </summary>
    public SamplerOptions EditingSampler()
    {
        var defaults = DiffusionModel.DefaultEditingSampler;
        if (Nfe is not null) throw new DiffuseException("--nfe picks a sampling setting; the editing commands take --sampler and --steps.");
        if (!ChoosesSampler) return defaults with { ClipX0 = Clip };
        if (Sampler is null && Sigmas is null && Spacing is null)
        {
            var chosen = defaults with { Steps = Steps ?? defaults.Steps, ClipX0 = Clip };
            chosen.Validate();
            return chosen;
        }
        var options = ToSamplerOptions();
        return Steps is null ? options with { Steps = defaults.Steps } : options;
    }

    /// <summary>Loads --model with the thread setting applied.</summary>
    public (DiffusionModel Model, string Folder) LoadModel(string command)
    {
        if (string.IsNullOrWhiteSpace(Model)) throw new DiffuseException("--model is required: the folder of a trained model, or a shipped model's name (fashion-mnist).");
        CliContext.RequireSingleProcess(command);
        string folder = ModelFolders.Resolve(Model);
        var model = DiffusionModel.Load(folder, TorchDevice());
        ApplyThreads(model.IsImage);
        model.ClampToDataRange = !NoClamp;
        if (!model.IsImage)
        {
            model.Dispose();
            throw new DiffuseException($"'diffuse {command}' edits images; {Model} was trained on a table.");
        }
        return (model, folder);
    }

    /// <summary>--class as a number, or null; refused for a model without classes.</summary>
    public long? ClassFor(DiffusionModel model)
    {
        if (model.ClassCount == 0 && (Class is not null || Guidance is not null))
            throw new DiffuseException($"{(Class is not null ? "--class" : "--guidance")} needs a class-conditional model; {Model} was trained without classes.");
        return Class is null ? null : SampleCommand.ParseClass(Class, model);
    }
}

/// <summary>Options of the commands that change given images (edit, inpaint).</summary>
public class ImageEditingSettings : EditingSettings
{
    /// <summary>Settings from the command line.</summary>
    public ImageEditingSettings()
    {
    }

    /// <summary>Settings given another way (see <see cref="EditingSettings(EditingChoices)"/>).</summary>
    protected ImageEditingSettings(EditingChoices choices) : base(choices)
    {
    }

    /// <summary>Images.</summary>
    [CommandOption("--image <SOURCE>")]
    [Description("The image(s) to change: PNG/JPEG files separated by commas, a folder, or a data set (fashion-mnist:test).")]
    public string? Image { get; init; }

    /// <summary>Count.</summary>
    [CommandOption("--count <K>")]
    [Description("Only the first K images.")]
    public int? Count { get; init; }

    /// <summary>Output.</summary>
    [CommandOption("--out <PATH>")]
    [Description("before-after.png (the sources above the results; inpaint adds the masked sources), or a folder for one PNG per result.")]
    public string? Out { get; init; }
}

/// <summary>Reading images and masks for the editing commands, and writing their results.</summary>
public static class EditingIo
{
    /// <summary>
    /// Images for <paramref name="model"/> from <paramref name="spec"/>: PNG/JPEG files separated by commas, a folder of
    /// them, or a data set (<c>fashion-mnist</c>, optionally <c>:test</c> or <c>:train</c>; default test); the first
    /// <paramref name="count"/> of them. Returns model-range floats [N, C, H, W], the labels when the source has them,
    /// and a name per image.
    /// </summary>
    public static (Tensor Images, long[]? Labels, string[] Names) Load(string spec, DiffusionModel model, bool resize, int? count, string option = "--images")
    {
        if (string.IsNullOrWhiteSpace(spec)) throw new DiffuseException($"{option} is required: PNG files separated by commas, a folder of images, or a data set such as fashion-mnist:test.");
        if (count is < 1) throw new DiffuseException($"--count must be at least 1 (got {count}).");
        var shape = model.ExampleShape;
        int c = (int)shape[0], h = (int)shape[1], w = (int)shape[2];
        var (data, split) = SplitSpec(spec);
        if (!File.Exists(spec) && !spec.Contains(',') && (NpmDatasets.IsKnown(data) || (Directory.Exists(data) && !HasPlainImages(data))))
        {
            using var set = ImageSources.Load(data, split, h);
            int n = Math.Min(count ?? set.Count, set.Count);
            if (!resize) model.CheckImages(set);
            else if (set.Channels != c || set.Height != h || set.Width != w)
                throw new DiffuseException($"--resize fits image files; the data set '{data}' has {set.Channels}×{set.Height}×{set.Width} images and the model {c}×{h}×{w}.");
            var images = ImageDataset.ToModelRange(set.Images.narrow(0, 0, n));
            long[]? labels = set.Labels?.Take(n).ToArray();
            return (images, labels, Enumerable.Range(0, n).Select(i => $"{Path.GetFileName(data.TrimEnd('/'))}-{split.ToString().ToLowerInvariant()}-{i:D5}").ToArray());
        }
        var files = spec.Contains(',') || File.Exists(spec)
            ? spec.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            : Directory.Exists(spec) ? Directory.GetFiles(spec).Where(IsImageFile).Order(StringComparer.Ordinal).ToArray()
            : throw new DiffuseException($"{option} '{spec}' is neither an image file, a folder nor a data set: give PNG files separated by commas, a folder of images, or fashion-mnist[:test].");
        if (files.Length == 0) throw new DiffuseException($"{option} '{spec}' holds no PNG or JPEG image.");
        files = files.Take(count ?? files.Length).ToArray();
        var inputs = files.Select(f => new ImageInput($"'{f}'", (w, h, grey) => ImageFolderReader.ReadFile(f, w, h, grey))).ToArray();
        return (Decode(inputs, model, resize), null, files.Select(f => Path.GetFileNameWithoutExtension(f)).ToArray());
    }

    /// <summary>
    /// Reads <paramref name="inputs"/> for <paramref name="model"/>: model-range floats [N, C, H, W]. Without
    /// <paramref name="resize"/> an image of another size or channel count is refused, naming it; with it, each is fitted
    /// to the model's size and channels (a grey image is repeated into RGB for a colour model).
    /// </summary>
    public static Tensor Decode(IReadOnlyList<ImageInput> inputs, DiffusionModel model, bool resize)
    {
        var shape = model.ExampleShape;
        int c = (int)shape[0], h = (int)shape[1], w = (int)shape[2];
        var pixels = new List<byte[]>();
        foreach (var input in inputs)
        {
            try
            {
                var (bytes, channels, height, width) = resize ? input.Read(w, h, c == 1) : input.Read(null, null, null);
                if (!resize && (channels != c || height != h || width != w))
                    throw new DiffuseException($"{input.Label} is {Describe(channels, height, width)} but the model takes {Describe(c, h, w)} ({model.Config.Data.Source}); give an image of that size, or pass --resize to fit it.");
                pixels.Add(c == 3 && channels == 1 ? bytes.Concat(bytes).Concat(bytes).ToArray() : bytes);
            }
            catch (ImageFolderException e)
            {
                throw new DiffuseException(e.Message, e);
            }
        }
        using var all = tensor(pixels.SelectMany(p => p).ToArray(), new long[] { inputs.Count, c, h, w });
        return ImageDataset.ToModelRange(all);
    }

    /// <summary>
    /// The mask (1 keep, 0 fill) [1, C, H, W] from a PNG (white keep, black fill; of the model's height and width) or a
    /// rectangle "x,y,w,h" to fill.
    /// </summary>
    public static Tensor Mask(string? file, string? rectangle, DiffusionModel model) =>
        Mask(file is null ? null : new ImageInput($"the mask '{file}'", (w, h, grey) => ImageFolderReader.ReadFile(file, w, h, grey)), rectangle, model);

    /// <summary>The mask of <see cref="Mask(string?, string?, DiffusionModel)"/> from an image however given.</summary>
    public static Tensor Mask(ImageInput? image, string? rectangle, DiffusionModel model)
    {
        var shape = model.ExampleShape;
        int c = (int)shape[0], h = (int)shape[1], w = (int)shape[2];
        if ((image is null) == (rectangle is null)) throw new DiffuseException("give the region to fill with one of --mask mask.png (white keep, black fill) or --mask-rect x,y,w,h.");
        if (rectangle is not null)
        {
            var parts = rectangle.Split(',', StringSplitOptions.TrimEntries);
            var v = new int[4];
            if (parts.Length != 4 || parts.Select((p, i) => int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out v[i])).Any(ok => !ok)
                || v[2] < 1 || v[3] < 1 || v[0] < 0 || v[1] < 0 || v[0] + v[2] > w || v[1] + v[3] > h)
                throw new DiffuseException($"--mask-rect must be x,y,w,h of a rectangle inside the model's {w}×{h} images, e.g. 7,7,14,14 (got '{rectangle}').");
            var mask = ones(1, c, h, w);
            mask[TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(v[1], v[1] + v[3]), TensorIndex.Slice(v[0], v[0] + v[2])] = zeros(1);
            return mask;
        }
        try
        {
            var (bytes, channels, height, width) = image!.Read(null, null, null);
            if (height != h || width != w)
                throw new DiffuseException($"{image.Label} is {width}×{height} but the model's images are {w}×{h}: draw the mask at the images' size.");
            using var pixels = tensor(bytes, new long[] { channels, h, w });
            var keep = pixels.to_type(ScalarType.Float32).mean(new long[] { 0 }, keepdim: true) > 127.5f;
            return keep.to_type(ScalarType.Float32).expand(c, h, w).unsqueeze(0).contiguous();
        }
        catch (ImageFolderException e)
        {
            throw new DiffuseException(e.Message, e);
        }
    }

    /// <summary>Checks --out: a .png grid, a .gif when allowed, or a folder; returns the extension ("" for a folder).</summary>
    public static string CheckOut(string? output, bool gif = false)
    {
        if (string.IsNullOrWhiteSpace(output)) throw new DiffuseException($"--out is required: a .png grid{(gif ? ", a .gif animation" : "")} or a folder for one PNG per image.");
        string extension = Path.GetExtension(output).ToLowerInvariant();
        if (extension == ".png" || extension == "" || (gif && extension == ".gif")) return extension;
        throw new DiffuseException($"--out must be a .png grid{(gif ? ", a .gif animation" : "")} or a folder (got '{output}').");
    }

    /// <summary>
    /// Model-range images as a grid of <paramref name="columns"/> per row (<paramref name="grid"/>), or as one PNG per
    /// image named <paramref name="names"/>: what the command writes to a .png file or a folder.
    /// </summary>
    public static EditingOutput Render(bool grid, Tensor images, IReadOnlyList<string> names, int columns, IReadOnlyList<string>? rowLabels = null)
    {
        int n = (int)images.shape[0];
        if (grid) return new EditingOutput(Pictures.ImageGridPng(images, columns, rowLabels), $"a grid of {n} images", null);
        using var bytes = ImageDataset.ToBytes(images);
        var files = new List<(string, byte[])>();
        for (int i = 0; i < n; i++)
        {
            using var one = bytes[i];
            files.Add((names[i] + ".png", Pictures.Png(one)));
        }
        return new EditingOutput(null, $"{n} PNG files", files);
    }

    /// <summary>Runs <paramref name="work"/> with a progress bar of <paramref name="total"/> sampler steps (a <see cref="ProgressRunner"/>).</summary>
    public static Tensor WithProgress(string label, long total, CancellationToken cancellationToken, Func<Action<SamplerStep>, CancellationToken, Tensor> work)
    {
        using var bar = new ProgressBar(label, total, "step");
        long done = 0;
        return work(_ => bar.Report(++done), cancellationToken);
    }

    /// <summary>What the command line shows while it edits: its lines on standard output and a progress bar per phase.</summary>
    public static EditingRun Console(CancellationToken cancellationToken) => new(CliContext.Out.WriteLine, WithProgress, cancellationToken);

    /// <summary>Sampler steps per batch times batches, for a progress bar.</summary>
    public static long Total(int stepsPerBatch, long count) => stepsPerBatch * ((count + DiffusionModel.DefaultImageBatch - 1) / DiffusionModel.DefaultImageBatch);

    /// <summary>A one-line summary of reconstruction errors: mean and worst PSNR, mean and worst max pixel error.</summary>
    public static string Reconstruction(Tensor source, Tensor result)
    {
        var psnr = ImageDistance.Psnr(source, result).Select(p => Math.Min(p, 100)).ToArray();
        var max = ImageDistance.MaxError(source, result);
        return $"PSNR {psnr.Average():0.00} dB (worst {psnr.Min():0.00}), max pixel error {max.Average():0.0} levels of 255 (worst {max.Max():0.0})";
    }

    private static string Describe(int channels, int height, int width) => $"{(channels == 1 ? "grey" : channels == 3 ? "RGB" : $"{channels}-channel")} {width}×{height}";

    private static (string Data, DatasetSplit Split) SplitSpec(string spec)
    {
        int colon = spec.LastIndexOf(':');
        if (colon > 0 && spec[(colon + 1)..] is var suffix && (suffix.Equals("test", StringComparison.OrdinalIgnoreCase) || suffix.Equals("train", StringComparison.OrdinalIgnoreCase)))
            return (spec[..colon], suffix.Equals("train", StringComparison.OrdinalIgnoreCase) ? DatasetSplit.Train : DatasetSplit.Test);
        return (spec, DatasetSplit.Test);
    }

    private static bool HasPlainImages(string folder) => Directory.GetFiles(folder).Any(IsImageFile);

    private static bool IsImageFile(string path) => ImageFolderReader.Extensions.Contains(Path.GetExtension(path).ToLowerInvariant());
}

/// <summary>The options every editing command shares, given other than on the command line (by a request to <c>diffuse serve</c>).</summary>
/// <param name="Model">The model's name, for messages.</param>
/// <param name="Class">As --class.</param>
/// <param name="Guidance">As --guidance.</param>
/// <param name="Resize">As --resize.</param>
/// <param name="Sampler">As --sampler.</param>
/// <param name="Steps">As --steps.</param>
/// <param name="Sigmas">As --sigmas.</param>
/// <param name="Spacing">As --spacing.</param>
/// <param name="Eta">As --eta.</param>
/// <param name="Variance">As --variance (default small).</param>
/// <param name="Clip">As --clip.</param>
/// <param name="Seed">As --seed.</param>
public sealed record EditingChoices(string Model, string? Class, double? Guidance, bool Resize, string? Sampler, int? Steps, string? Sigmas, string? Spacing,
    double? Eta, string? Variance, double? Clip, ulong Seed);

/// <summary>One image given to an editing operation: how messages name it, and how to read it (at its own size, or fitted to a width, height and grey or RGB).</summary>
/// <param name="Label">The image in messages, e.g. <c>'shirt.png'</c>.</param>
/// <param name="Read">Reads planar pixels [C, H, W], fitted when a size is given.</param>
public sealed record ImageInput(string Label, Func<int?, int?, bool?, (byte[] Pixels, int Channels, int Height, int Width)> Read);

/// <summary>Runs one phase of an editing operation (<paramref name="label"/>, <paramref name="total"/> sampler steps), reporting each step.</summary>
public delegate Tensor ProgressRunner(string label, long total, CancellationToken cancellationToken, Func<Action<SamplerStep>, CancellationToken, Tensor> work);

/// <summary>Where an editing operation reports: its informational lines, its progress, and the token that stops it.</summary>
/// <param name="Log">Receives each line the command prints.</param>
/// <param name="Progress">Runs each phase with progress reporting.</param>
/// <param name="CancellationToken">Stops the work within one network evaluation.</param>
public sealed record EditingRun(Action<string> Log, ProgressRunner Progress, CancellationToken CancellationToken);

/// <summary>
/// The bytes an editing command writes: one file (a grid, a strip or an animation), or one PNG per image by name for an
/// output folder. The command line saves them; the server sends them.
/// </summary>
/// <param name="File">The file's bytes, or null for one PNG per image.</param>
/// <param name="What">What it is, for the line that says where it was written ("a grid of 8 images").</param>
/// <param name="Images">The PNG files by name, or null.</param>
public sealed record EditingOutput(byte[]? File, string What, IReadOnlyList<(string Name, byte[] Png)>? Images)
{
    /// <summary>Writes the file to <paramref name="output"/>, or the PNGs into the folder <paramref name="output"/>, and says so.</summary>
    public void Save(string output)
    {
        if (File is not null) Diffuse.IO.AtomicFile.WriteAllBytes(output, File);
        else
        {
            Directory.CreateDirectory(output);
            foreach (var (name, png) in Images!) Diffuse.IO.AtomicFile.WriteAllBytes(Path.Combine(output, name), png);
        }
        CliContext.Out.WriteLine($"wrote {What} to {Path.GetFullPath(output)}");
    }
}
