using System.Security.Cryptography;
using System.Text;
using Diffuse.Denoisers;
using Diffuse.Editing;
using Diffuse.Runtime;
using Diffuse.Sampling;
using static TorchSharp.torch;

namespace Diffuse;

/// <summary>Editing with a trained model: inversion, SDEdit and inpainting (see <see cref="Editing"/>), in batches.</summary>
public sealed partial class DiffusionModel
{
    private string? _identity;

    /// <summary>
    /// A digest of the model (SHA-256 of its configuration's JSON and every weight's name, shape and bytes), to recognise
    /// the model a latent was encoded with.
    /// </summary>
    public string Identity => _identity ??= ComputeIdentity();

    /// <summary>
    /// The default sampler of editing: 50 DPM-Solver++(2M) steps on log-SNR-uniform levels (deterministic, so it also
    /// inverts; its levels reach down to the trained σ_min, which the last decoding step needs).
    /// </summary>
    public static SamplerOptions DefaultEditingSampler { get; } = SamplingDefaults.Image;

    /// <summary>
    /// Encodes <paramref name="images"/> (model units [N, ...], e.g. <see cref="Data.Images.ImageDataset.ToModelRange"/>)
    /// into latents by DDIM inversion (<see cref="Inversion.Encode"/>): float32 [N, ...] on the CPU, owned by the caller.
    /// </summary>
    /// <param name="images">The data, in model units.</param>
    /// <param name="options">A deterministic sampler and its steps (default <see cref="DefaultEditingSampler"/>).</param>
    /// <param name="classes">The class of each image for a class-conditional model (−1 unconditional); null: unconditional.</param>
    /// <param name="guidance">Guidance scale s (default 1, the conditional model, Ho and Salimans' w = 0: inversion is most exact without guidance).</param>
    /// <param name="onStep">Called after every step of every batch.</param>
    /// <param name="batchSize">Images per batch.</param>
    /// <param name="cancellationToken">Stops after the current network evaluation.</param>
    public Tensor Encode(Tensor images, SamplerOptions? options = null, IReadOnlyList<long>? classes = null, double guidance = 1,
        Action<SamplerStep>? onStep = null, int batchSize = 0, CancellationToken cancellationToken = default)
    {
        var path = EditingPath.Resolve(options ?? DefaultEditingSampler, Schedule, deterministic: true);
        return InBatches(images, classes, guidance, batchSize, onStep, cancellationToken,
            (denoiser, batch, _, report) => Inversion.Encode(denoiser, batch, path, options ?? DefaultEditingSampler, report));
    }

    /// <summary>
    /// Decodes <paramref name="latents"/> [N, ...] (the output of <see cref="Encode"/> with the same options) into images:
    /// float32 [N, ...] on the CPU, clamped to [−1, 1] for images; owned by the caller.
    /// </summary>
    /// <param name="latents">The latents.</param>
    /// <param name="options">A deterministic sampler and its steps, the encoding's (default <see cref="DefaultEditingSampler"/>).</param>
    /// <param name="classes">The class of each row for a class-conditional model (−1 unconditional); null: unconditional.</param>
    /// <param name="guidance">Guidance scale s (default 1, the conditional model, Ho and Salimans' w = 0: inversion is most exact without guidance).</param>
    /// <param name="onStep">Called after every step of every batch.</param>
    /// <param name="batchSize">Rows per batch (does not change the result).</param>
    /// <param name="cancellationToken">Stops after the current network evaluation.</param>
    public Tensor Decode(Tensor latents, SamplerOptions? options = null, IReadOnlyList<long>? classes = null, double guidance = 1,
        Action<SamplerStep>? onStep = null, int batchSize = 0, CancellationToken cancellationToken = default)
    {
        var path = EditingPath.Resolve(options ?? DefaultEditingSampler, Schedule, deterministic: true);
        return Finish(InBatches(latents, classes, guidance, batchSize, onStep, cancellationToken,
            (denoiser, batch, _, report) => Inversion.Decode(denoiser, batch, path, options ?? DefaultEditingSampler, report)));
    }

    /// <summary>
    /// Image-to-image by SDEdit (<see cref="ImageToImage.Run"/>): each image noised to <paramref name="strength"/> and
    /// denoised, towards its class in <paramref name="classes"/>; float32 on the CPU, owned by the caller. Image i uses the
    /// noise of sample <paramref name="first"/> + i of <paramref name="seed"/>.
    /// </summary>
    /// <param name="images">The images, in model units [N, ...].</param>
    /// <param name="strength">How far towards pure noise, in (0, 1].</param>
    /// <param name="seed">The seed of the noise.</param>
    /// <param name="options">Any sampler and its steps (default <see cref="DefaultEditingSampler"/>).</param>
    /// <param name="classes">The class of each row for a class-conditional model (−1 unconditional); null: unconditional.</param>
    /// <param name="guidance">Guidance scale s (default <see cref="SamplingDefaults.Guidance"/>; 1 is the conditional model, Ho and Salimans' w is s − 1).</param>
    /// <param name="onStep">Called after every step of every batch.</param>
    /// <param name="first">Number of the first image's noise.</param>
    /// <param name="batchSize">Rows per batch (does not change the result).</param>
    /// <param name="cancellationToken">Stops after the current network evaluation.</param>
    public Tensor Edit(Tensor images, double strength, ulong seed, SamplerOptions? options = null, IReadOnlyList<long>? classes = null,
        double? guidance = null, Action<SamplerStep>? onStep = null, long first = 0, int batchSize = 0, CancellationToken cancellationToken = default)
    {
        ImageToImage.StepsAt(strength, 1);
        var path = EditingPath.Resolve(options ?? DefaultEditingSampler, Schedule, deterministic: false);
        return Finish(InBatches(images, classes, guidance ?? SamplingDefaults.Guidance, batchSize, onStep, cancellationToken,
            (denoiser, batch, start, report) => ImageToImage.Run(denoiser, batch, strength, path, options ?? DefaultEditingSampler, seed, first + start, report)));
    }

    /// <summary>
    /// Inpainting (<see cref="Inpainting.Run"/>): fills <paramref name="images"/> where <paramref name="mask"/> is 0 and
    /// keeps it where the mask is 1, by the replacement method or RePaint's resampling; float32 on the CPU, owned by the caller.
    /// </summary>
    /// <param name="images">The images, in model units [N, ...].</param>
    /// <param name="mask">1 keep, 0 fill: [N, ...] like the images, or one mask [...] or [1, ...] for all.</param>
    /// <param name="seed">The seed of the noise.</param>
    /// <param name="options">Any sampler and its steps (default <see cref="DefaultEditingSampler"/>).</param>
    /// <param name="schedule">RePaint's resampling (default: none, the replacement method).</param>
    /// <param name="classes">The class of each row for a class-conditional model (−1 unconditional); null: unconditional.</param>
    /// <param name="guidance">Guidance scale s (default <see cref="SamplingDefaults.Guidance"/>; 1 is the conditional model, Ho and Salimans' w is s − 1).</param>
    /// <param name="onStep">Called after every step of every batch.</param>
    /// <param name="first">Number of the first image's noise.</param>
    /// <param name="batchSize">Rows per batch (does not change the result).</param>
    /// <param name="cancellationToken">Stops after the current network evaluation.</param>
    public Tensor Inpaint(Tensor images, Tensor mask, ulong seed, SamplerOptions? options = null, RePaintSchedule? schedule = null,
        IReadOnlyList<long>? classes = null, double? guidance = null, Action<SamplerStep>? onStep = null, long first = 0, int batchSize = 0,
        CancellationToken cancellationToken = default)
    {
        schedule ??= new RePaintSchedule();
        schedule.Validate();
        var one = images.shape[1..];
        bool shared = mask.shape.SequenceEqual(one) || (mask.dim() == images.dim() && mask.shape[0] == 1 && mask.shape[1..].SequenceEqual(one));
        if (!shared && !mask.shape.SequenceEqual(images.shape))
            throw new DiffuseException($"the mask is [{string.Join(", ", mask.shape)}] but the images are [{string.Join(", ", images.shape)}]: give a mask of the images' size.");
        var path = EditingPath.Resolve(options ?? DefaultEditingSampler, Schedule, deterministic: false);
        return Finish(InBatches(images, classes, guidance ?? SamplingDefaults.Guidance, batchSize, onStep, cancellationToken, (denoiser, batch, start, report) =>
        {
            var m = (shared ? mask.reshape(one).unsqueeze(0) : mask.narrow(0, start, batch.shape[0])).to(Device).to_type(batch.dtype);
            return Inpainting.Run(denoiser, batch, m, path, options ?? DefaultEditingSampler, schedule, seed, first + start, report);
        }));
    }

    /// <summary>
    /// Runs <paramref name="run"/> on batches of <paramref name="input"/> (rows <c>start</c> …) with the denoiser of each
    /// batch's classes, on the model's device; returns the rows on the CPU.
    /// </summary>
    private Tensor InBatches(Tensor input, IReadOnlyList<long>? classes, double guidance, int batchSize, Action<SamplerStep>? onStep,
        CancellationToken cancellationToken, Func<ISigmaDenoiser, Tensor, long, Action<SamplerStep>?, Tensor> run)
    {
        if (!input.shape[1..].SequenceEqual(ExampleShape))
            throw new DiffuseException($"the input is [{string.Join(", ", input.shape)}] but the model's examples are [{string.Join(", ", ExampleShape)}].");
        long count = input.shape[0];
        if (count < 1) throw new DiffuseException("there is nothing to edit: give at least one image.");
        CheckEditingClasses(classes, count);
        if (double.IsNaN(guidance) || guidance < 0) throw new DiffuseException($"the guidance scale must be zero or positive (got {guidance}).");
        cancellationToken.ThrowIfCancellationRequested();
        TorchThreads.Apply(IsImage);
        if (batchSize <= 0) batchSize = IsImage ? DefaultImageBatch : DefaultTableBatch;
        Action<SamplerStep>? report = !cancellationToken.CanBeCanceled ? onStep : step =>
        {
            cancellationToken.ThrowIfCancellationRequested();
            onStep?.Invoke(step);
        };
        var batches = new List<Tensor>();
        try
        {
            for (long start = 0; start < count; start += batchSize)
            {
                int size = (int)Math.Min(batchSize, count - start);
                using var scope = NewDisposeScope();
                var denoiser = SigmaDenoiser.From(DenoiserFor(classes?.Skip((int)start).Take(size).ToArray(), guidance), Schedule);
                var batch = input.narrow(0, start, size).to_type(ScalarType.Float32).to(Device);
                batches.Add(run(denoiser, batch, start, report).cpu().MoveToOuterDisposeScope());
            }
            return batches.Count == 1 ? batches[0].alias() : cat(batches, 0);
        }
        finally
        {
            foreach (var b in batches) b.Dispose();
        }
    }

    /// <summary>Images clamped to [−1, 1]; tables as they are. Disposes <paramref name="result"/> when it makes a new tensor.</summary>
    private Tensor Finish(Tensor result)
    {
        if (!IsImage) return result;
        using (result) return result.clamp(-1, 1);
    }

    private void CheckEditingClasses(IReadOnlyList<long>? classes, long count)
    {
        if (classes is null) return;
        if (ClassCount == 0) throw new DiffuseException($"this model was trained without classes, so {Param.Of("DiffusionModel.Sample(classes)", "classes")} cannot be used. Edit without it.");
        if (classes.Count != count) throw new ArgumentException($"{classes.Count} class labels were given for {count} images.", nameof(classes));
        foreach (long c in classes)
            if (c < -1 || c >= ClassCount)
                throw new DiffuseException($"class {c} does not exist: this model knows classes 0 … {ClassCount - 1} ({string.Join(", ", ClassNames.Select((n, i) => $"{i} {n}"))}), and −1 for none.");
    }

    private string ComputeIdentity()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes((Config with { LibraryVersion = null }).ToJson()));
        using var scope = NewDisposeScope();
        foreach (var (name, value) in Network.state_dict().OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            hash.AppendData(Encoding.UTF8.GetBytes($"{name}:{string.Join(",", value.shape)}:{value.dtype};"));
            var cpu = value.detach().cpu().contiguous();
            hash.AppendData(cpu.bytes);
        }
        return Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant();
    }
}
