using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Diffuse.Models;

/// <summary>
/// The U-Net denoiser of DDPM (Ho et al. 2020, App. B) with the refinements of improved DDPM (Nichol and Dhariwal
/// 2021): an input conv; per resolution level residual blocks conditioned on the time embedding, self-attention at
/// chosen levels, downsampling by strided conv; a middle block (residual, attention, residual); the mirrored way up with
/// skip connections concatenated and nearest-neighbour upsampling followed by a conv; GroupNorm → SiLU → zero-initialised
/// conv to the output. Class conditioning adds a learned class embedding to the time embedding; its last entry is the
/// "null" class used for unconditional predictions (classifier-free guidance, Ho and Salimans 2022). Any channel count
/// and any height and width work: odd sizes are downsampled by rounding up and upsampled back to the skip connection's
/// exact size. Maps (z_t [B, C, H, W], timestep index [B], class [B] or null) to [B, C·multiplier, H, W].
/// </summary>
public sealed class UNetNetwork : DiffusionNetwork
{
    private readonly UNetConfig _config;
    private readonly int _trainedTimesteps;
    private readonly UNetLayout _layout = new();
    [ComponentName(Name = "time_mlp")] private readonly Sequential timeMlp;
    [ComponentName(Name = "class_embedding")] private readonly Embedding? classEmbedding;
    [ComponentName(Name = "input_conv")] private readonly Conv2d inputConv;
    [ComponentName(Name = "down")] private readonly ModuleList<UNetLevel> down;
    [ComponentName(Name = "mid")] private readonly UNetMiddle mid;
    [ComponentName(Name = "up")] private readonly ModuleList<UNetLevel> up;
    [ComponentName(Name = "out_norm")] private readonly GroupNorm outNorm;
    [ComponentName(Name = "out_conv")] private readonly Conv2d outConv;

    /// <summary>Builds the network with the current torch random state (seed it first for reproducibility).</summary>
    /// <param name="config">The network's shape.</param>
    /// <param name="trainedTimesteps">T of the schedule it is trained on (timestep indices are scaled to 0–1000).</param>
    public UNetNetwork(UNetConfig config, int trainedTimesteps) : base("unet")
    {
        config.Validate();
        _config = config;
        _trainedTimesteps = trainedTimesteps;
        int embedding = config.TimeEmbeddingWidth, levels = config.Levels;
        timeMlp = Sequential(("0", Linear(config.BaseChannels, embedding)), ("1", SiLU()), ("2", Linear(embedding, embedding)));
        classEmbedding = config.NumClasses > 0 ? Embedding(config.NumClasses + 1, embedding) : null;
        inputConv = Conv2d(config.Channels, config.BaseChannels, 3, padding: 1);

        UNetResidualBlock Residual(int inChannels, int outChannels, int index) =>
            new(inChannels, outChannels, embedding, config.Dropout, config.ScaleShiftNorm, _layout, $"res{index}");

        // Channels of every tensor pushed as a skip connection, in order.
        var skipChannels = new Stack<int>();
        skipChannels.Push(config.BaseChannels);
        int channels = config.BaseChannels;
        var downLevels = new UNetLevel[levels];
        for (int level = 0; level < levels; level++)
        {
            int levelChannels = config.LevelChannels(level);
            var blocks = new UNetResidualBlock[config.BlocksPerLevel];
            for (int i = 0; i < blocks.Length; i++)
            {
                blocks[i] = Residual(channels, levelChannels, i);
                channels = levelChannels;
                skipChannels.Push(channels);
            }
            var attention = config.HasAttention(level)
                ? Enumerable.Range(0, blocks.Length).Select(i => new UNetAttentionBlock(channels, config.Heads, _layout, $"attn{i}")).ToArray()
                : Array.Empty<UNetAttentionBlock>();
            Conv2d? downsample = null;
            if (level < levels - 1)
            {
                downsample = Conv2d(channels, channels, 3, stride: 2, padding: 1);
                skipChannels.Push(channels);
            }
            downLevels[level] = new UNetLevel(blocks, attention, downsample, null, $"down{level}");
        }
        down = new ModuleList<UNetLevel>(downLevels);
        mid = new UNetMiddle(channels, config, _layout, "mid");

        var upLevels = new UNetLevel[levels];
        for (int level = levels - 1; level >= 0; level--)
        {
            int levelChannels = config.LevelChannels(level);
            var blocks = new UNetResidualBlock[config.BlocksPerLevel + 1];
            for (int i = 0; i < blocks.Length; i++)
            {
                blocks[i] = Residual(channels + skipChannels.Pop(), levelChannels, i);
                channels = levelChannels;
            }
            var attention = config.HasAttention(level)
                ? Enumerable.Range(0, blocks.Length).Select(i => new UNetAttentionBlock(channels, config.Heads, _layout, $"attn{i}")).ToArray()
                : Array.Empty<UNetAttentionBlock>();
            var upsample = level > 0 ? new UNetUpsample(channels, "upsample") : null;
            upLevels[level] = new UNetLevel(blocks, attention, null, upsample, $"up{level}");
        }
        up = new ModuleList<UNetLevel>(upLevels);

        outNorm = UNetLayers.Norm(channels);
        outConv = Conv2d(channels, config.Channels * config.OutputChannelsMultiplier, 3, padding: 1);
        UNetLayers.ZeroInit(outConv);
        RegisterComponents();
    }

    /// <summary>The configuration this network was built from.</summary>
    public UNetConfig Config => _config;

    /// <inheritdoc />
    public override NetworkConfig Configuration => _config;

    /// <summary>
    /// Whether convolutions run on channels-last feature maps (off by default). The results are the same to float
    /// rounding; libtorch's CPU convolutions are 5–15% faster on channels-last inputs at these sizes, but GroupNorm must
    /// then copy to the standard layout and back, and on a 2-core AVX2 machine the whole training step came out 5–10%
    /// slower (docs/benchmarks.md). Worth measuring on other CPUs and larger images.
    /// </summary>
    public bool ChannelsLast
    {
        get => _layout.ChannelsLast;
        set => _layout.ChannelsLast = value;
    }

    /// <summary>
    /// Predicts from noisy images <paramref name="z"/> [B, C, H, W] at float timestep indices <paramref name="timesteps"/>
    /// [B] and class labels <paramref name="classes"/> [B] (int64; <c>null</c> or <see cref="DiffusionNetwork.NullClass"/> for
    /// unconditional). The time embedding is cast to <paramref name="z"/>'s dtype, so a bfloat16 copy of the network
    /// takes bfloat16 images.
    /// </summary>
    public override Tensor forward(Tensor z, Tensor timesteps, Tensor? classes)
    {
        if (z.dim() != 4 || z.shape[1] != _config.Channels)
            throw new DiffuseException($"the U-Net takes images [batch, {_config.Channels}, height, width]; got [{string.Join(", ", z.shape)}].");
        if (classes is not null && classEmbedding is null)
            throw new DiffuseException("class labels were given to an unconditional U-Net (NumClasses = 0).");
        using var scope = NewDisposeScope();
        var embedding = timeMlp.call(TimeEmbedding.Sinusoidal(timesteps, _config.BaseChannels, _trainedTimesteps).to_type(z.dtype));
        if (classEmbedding is not null)
            embedding = embedding + classEmbedding.call(classes ?? full(z.shape[0], (long)NullClass, dtype: ScalarType.Int64, device: z.device));
        // Every residual block starts its time projection with SiLU: apply it once.
        var activated = functional.silu(embedding);

        var h = inputConv.call(_layout.ForInput(z));
        var skips = new Stack<Tensor>();
        skips.Push(h);
        foreach (var level in down)
        {
            for (int i = 0; i < level.Blocks.Count; i++)
            {
                h = level.Block(i, h, activated);
                skips.Push(h);
            }
            if (level.Downsample is { } downsample)
            {
                h = downsample.call(h);
                skips.Push(h);
            }
        }
        h = mid.call(h, activated);
        for (int l = up.Count - 1; l >= 0; l--)
        {
            var level = up[l];
            for (int i = 0; i < level.Blocks.Count; i++)
                h = level.Block(i, cat(new[] { h, skips.Pop() }, 1), activated);
            if (level.Upsample is { } upsample)
            {
                var skip = skips.Peek();
                h = upsample.call(h, new[] { skip.shape[2], skip.shape[3] });
            }
        }
        var normed = _layout.ForConv(UNetLayers.Silu(UNetLayers.Normalize(outNorm, h), !is_grad_enabled()));
        return outConv.call(normed).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Floating-point operations (a multiply-add counts two) of one image's forward pass at
    /// <paramref name="height"/>×<paramref name="width"/>: every conv and linear layer and the two attention matrix
    /// products; norms, activations, softmax and additions are left out (they are a few percent).
    /// </summary>
    public long ForwardFlops(int height, int width)
    {
        long flops = UNetLayers.LinearFlops(_config.BaseChannels, _config.TimeEmbeddingWidth) + UNetLayers.LinearFlops(_config.TimeEmbeddingWidth, _config.TimeEmbeddingWidth);
        flops += UNetLayers.ConvFlops(_config.Channels, _config.BaseChannels, 3, height, width);
        var sizes = new long[_config.Levels, 2];
        long h = height, w = width;
        for (int l = 0; l < _config.Levels; l++)
        {
            sizes[l, 0] = h;
            sizes[l, 1] = w;
            var level = down[l];
            for (int i = 0; i < level.Blocks.Count; i++)
                flops += level.Blocks[i].Flops(h, w) + (level.Attention.Count > 0 ? level.Attention[i].Flops(h, w) : 0);
            if (level.Downsample is not null)
            {
                h = (h + 1) / 2;
                w = (w + 1) / 2;
                int c = _config.LevelChannels(l);
                flops += UNetLayers.ConvFlops(c, c, 3, h, w);
            }
        }
        flops += mid.Flops(h, w);
        for (int l = _config.Levels - 1; l >= 0; l--)
        {
            var level = up[l];
            for (int i = 0; i < level.Blocks.Count; i++)
                flops += level.Blocks[i].Flops(h, w) + (level.Attention.Count > 0 ? level.Attention[i].Flops(h, w) : 0);
            if (level.Upsample is { } upsample)
            {
                h = sizes[l - 1, 0];
                w = sizes[l - 1, 1];
                flops += upsample.Flops(h, w);
            }
        }
        flops += UNetLayers.ConvFlops(_config.LevelChannels(0), _config.Channels * _config.OutputChannelsMultiplier, 3, height, width);
        return flops;
    }

    /// <summary>
    /// A copy of this network's current weights in <paramref name="dtype"/>, in evaluation mode and without gradients:
    /// for sampling and evaluation (bfloat16 runs the convolutions much faster on CPUs with AVX-512 BF16; keep float32
    /// weights for training). The caller disposes the copy.
    /// </summary>
    public UNetNetwork CopyForInference(ScalarType dtype = ScalarType.Float32)
    {
        // Building a network draws its initial weights: leave the caller's random stream where it was.
        UNetNetwork copy;
        using (var rngState = get_rng_state())
        {
            copy = new UNetNetwork(_config, _trainedTimesteps);
            set_rng_state(rngState);
        }
        using (var noGrad = no_grad())
        {
            var source = state_dict();
            foreach (var (name, target) in copy.state_dict()) target.copy_(source[name]);
        }
        copy.ChannelsLast = ChannelsLast;
        copy.to(dtype);
        foreach (var p in copy.parameters()) p.requires_grad = false;
        copy.eval();
        return copy;
    }
}
